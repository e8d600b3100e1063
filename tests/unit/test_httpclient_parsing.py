"""URL parsing of bastion.httpclient (no network)."""

from __future__ import annotations

import pytest

from bastion.httpclient.client import _parse_url


def test_http_url_with_default_port_omits_port_in_host_header() -> None:
    t = _parse_url("http://Example.COM/v1/chat?x=1&y=2#frag")
    assert t.pool_key == ("http", "example.com", 80)
    assert not t.https
    assert t.request_target == b" /v1/chat?x=1&y=2 HTTP/1.1\r\n"
    assert t.host_line == b"Host: example.com\r\n"


def test_https_url_with_explicit_port() -> None:
    t = _parse_url("https://api.example:8443")
    assert t.pool_key == ("https", "api.example", 8443)
    assert t.https
    assert t.request_target == b" / HTTP/1.1\r\n"
    assert t.host_line == b"Host: api.example:8443\r\n"


def test_ipv6_literal_is_bracketed_in_host_header_only() -> None:
    t = _parse_url("http://[::1]:8080/x")
    assert (t.host, t.port) == ("::1", 8080)
    assert t.host_line == b"Host: [::1]:8080\r\n"
    assert _parse_url("https://[::1]/").host_line == b"Host: [::1]\r\n"


def test_non_ascii_and_spaces_in_path_are_percent_encoded() -> None:
    t = _parse_url("http://h/caf\u00e9 x?q=\u00fc")
    assert t.request_target == b" /caf%C3%A9%20x?q=%C3%BC HTTP/1.1\r\n"


@pytest.mark.parametrize(
    "url", ["ftp://h/", "h:80/x", "http:///path", "http://h:99999/", "http://h:port/"]
)
def test_invalid_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        _parse_url(url)
