"""The embedded llama.cpp model: integrity check, bounded queue, cancellation on disconnect."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pytest

from bastion.backends.weights import SMOLLM2_SHA256, packaged_gguf, sha256_file
from bastion.config import EmbeddedModel, ServerSettings, Settings
from bastion.errors import IntegrityError
from tests.gateway_harness import RunningGateway, running

MSG = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def embedded(**spec: object) -> Settings:
    return Settings(
        server=ServerSettings(port=0),
        models=[EmbeddedModel(name="smollm2", backend="llama_cpp", **spec)],  # type: ignore[arg-type]
    )


def test_packaged_weights_match_the_pinned_digest() -> None:
    assert sha256_file(packaged_gguf()) == SMOLLM2_SHA256


def test_tampered_weights_are_refused_before_loading(tmp_path: Path) -> None:
    original = packaged_gguf()
    copy = tmp_path / "model.gguf"
    shutil.copyfile(original, copy)
    with open(copy, "r+b") as fh:
        fh.seek(4096)
        byte = fh.read(1)
        fh.seek(4096)
        fh.write(bytes([byte[0] ^ 0xFF]))
    gw = RunningGateway(embedded(path=str(copy), sha256=SMOLLM2_SHA256))
    with pytest.raises(IntegrityError) as info:
        gw.start()
    gw.stop()
    assert info.value.expected == SMOLLM2_SHA256
    assert str(copy) in str(info.value)


def test_any_gguf_path_loads_without_checksum(tmp_path: Path) -> None:
    copy = tmp_path / "other.gguf"
    shutil.copyfile(packaged_gguf(), copy)
    with running(embedded(path=str(copy))) as gw:
        status, body = gw.request(
            "POST", "/v1/chat/completions", {"model": "smollm2", "messages": MSG, "max_tokens": 2}
        )
        assert status == 200, body


def _post(port: int, max_tokens: int) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps({"model": "smollm2", "messages": MSG, "max_tokens": max_tokens}),
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def _busy_stream(port: int) -> socket.socket:
    """A long stream that keeps the model generating (until its socket closes), once its
    first event has arrived."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        body = json.dumps(
            {"model": "smollm2", "messages": MSG, "max_tokens": 4000, "stream": True,
             "temperature": 1.0}
        ).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        received = b""
        while b"data: " not in received:
            data = sock.recv(65536)
            assert data, "stream closed before the first event"
            received += data
    except BaseException:
        sock.close()  # a failing test must not leave the model busy for the next one
        raise
    return sock


def test_full_queue_answers_503_with_retry_after_at_once() -> None:
    """The model generates one stream and has room for one waiter: of three more requests
    one waits (then gets its answer) and two are refused at once. A lone deployment's full
    queue is not retried by the router after the Retry-After (that would be a second,
    hidden queue): the client gets the 503 and decides."""
    with running(embedded(queue_size=1, n_ctx=4096)) as gw, ThreadPoolExecutor(3) as pool:
        sock = _busy_stream(gw.port)
        try:
            futures = [pool.submit(_post, gw.port, 1) for _ in range(3)]
            # in the order they come back: the refused first, the waiter once the stream
            # has ended (or its client has gone)
            done = [f.result() for f in as_completed(futures, timeout=120)]
        finally:
            sock.close()
        assert [s for s, _ in done] == [503, 503, 200], done
        assert all(int(h["retry-after"]) >= 1 for _, h in done[:2])


def test_client_disconnect_stops_generation_and_frees_the_model() -> None:
    with running(embedded(queue_size=0, n_ctx=4096)) as gw:
        sock = _busy_stream(gw.port)
        try:
            # the model is busy with this stream: a second request is refused (queue_size=0)
            assert _post(gw.port, 1)[0] == 503
        finally:
            sock.close()
        deadline = time.monotonic() + 10
        status = 0
        while time.monotonic() < deadline:
            status = _post(gw.port, 1)[0]
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, "the abandoned generation kept the model busy"


def test_n_greater_than_one_is_a_clear_400() -> None:
    with running(embedded()) as gw:
        status, body = gw.request(
            "POST", "/v1/chat/completions", {"model": "smollm2", "messages": MSG, "n": 2}
        )
        assert status == 400
        assert body["error"]["param"] == "n"


def test_prompt_longer_than_context_is_400_not_500() -> None:
    with running(embedded(n_ctx=256)) as gw:
        long = [{"role": "user", "content": "word " * 2000}]
        status, body = gw.request(
            "POST", "/v1/chat/completions", {"model": "smollm2", "messages": long, "max_tokens": 4}
        )
        assert status == 400, body
        assert body["error"]["type"] == "invalid_request_error"


def test_input_the_model_refuses_is_an_http_error_even_when_streaming() -> None:
    with running(embedded(n_ctx=256)) as gw:
        long = [{"role": "user", "content": "word " * 2000}]
        for stream in (False, True):
            status, body = gw.request(
                "POST",
                "/v1/chat/completions",
                {"model": "smollm2", "messages": long, "max_tokens": 4, "stream": stream},
            )
            assert status == 400, body
            assert body["error"]["type"] == "invalid_request_error"


def test_batched_engine_serves_concurrent_requests_through_the_gateway() -> None:
    import openai

    with running(embedded(parallel=2, queue_size=4, n_ctx=1024)) as gw:
        client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0)
        greedy = {"model": "smollm2", "messages": MSG, "max_tokens": 12, "temperature": 0}

        def one(i: int) -> tuple[str, int]:
            if i % 2:
                chunks = list(
                    client.chat.completions.create(
                        **greedy, stream=True, stream_options={"include_usage": True}
                    )
                )
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                usage = chunks[-1].usage
            else:
                reply = client.chat.completions.create(**greedy)
                text, usage = reply.choices[0].message.content or "", reply.usage
            assert usage is not None
            return text, usage.completion_tokens

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(one, range(4)))
        texts = {text for text, _ in results}
        assert len(texts) == 1 and texts != {""}, results  # greedy: same prompt, same text
        assert all(0 < n <= 12 for _, n in results)
        legacy = client.completions.create(model="smollm2", prompt="Once upon", max_tokens=4)
        assert legacy.choices[0].text
