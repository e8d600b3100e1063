"""Self-tests for the fake OpenAI-compatible upstream (tests/fakes/upstream.py)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.upstream import DEFAULT_CONTENT, Behaviour, FakeUpstream

CHAT = "/v1/chat/completions"
MSGS = [{"role": "user", "content": "Say hello"}]
ENVELOPE_500 = {
    "error": {
        "message": "fake upstream error",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as server:
        yield server
        assert server.errors == []


@pytest.fixture
def client(up: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=up.base_url, api_key="x", max_retries=0, timeout=10) as c:
        yield c


@contextlib.contextmanager
def connect(up: FakeUpstream, timeout: float = 5) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=timeout)
    try:
        yield conn
    finally:
        conn.close()


def send(
    conn: http.client.HTTPConnection,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> http.client.HTTPResponse:
    hdrs = {"content-type": "application/json", **(headers or {})}
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method or ("GET" if body is None else "POST"), path, data, hdrs)
    return conn.getresponse()


def sse_payloads(raw: bytes) -> list[str]:
    """Split an SSE body into the data payloads, checking the `data: x\\n\\n` framing."""
    assert raw.endswith(b"\n\n")
    events = raw.decode().split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: ") :] for e in events]


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": MSGS, **extra}


# --------------------------------------------------------------------- lifecycle


def test_base_url_points_at_bound_loopback_port(up: FakeUpstream) -> None:
    assert up.port > 0
    assert up.base_url == f"http://127.0.0.1:{up.port}/v1"


def test_stop_closes_idle_keepalive_connections_and_frees_port() -> None:
    server = FakeUpstream().start()
    with connect(server) as conn:
        resp = send(conn, "/health")
        resp.read()
        assert resp.status == 200
        server.stop()
        assert conn.sock is not None
        conn.sock.settimeout(5)
        assert conn.sock.recv(1) == b""  # server side closed the idle connection
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", server.port), timeout=2),
    ):
        pass
    server.stop()  # idempotent


def test_stop_interrupts_an_in_flight_delayed_request() -> None:
    server = FakeUpstream().start()
    server.behaviour.delay_ms = 10_000
    with connect(server) as conn:
        conn.request("GET", "/health")
        server.wait_for_requests(1)
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 5
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()


# ------------------------------------------------------------ chat via the SDK


def test_chat_completion_non_stream_through_sdk(up: FakeUpstream, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="gpt-test", messages=MSGS)  # type: ignore[arg-type]
    assert resp.object == "chat.completion"
    assert resp.id
    assert resp.created > 0
    assert resp.model == "gpt-test"
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == DEFAULT_CONTENT
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert resp.usage is not None
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.completion_tokens > 0

    (req,) = up.requests
    assert req["method"] == "POST"
    assert req["path"] == CHAT
    assert req["json"]["messages"] == MSGS
    assert json.loads(req["raw"]) == req["json"]
    assert req["headers"]["authorization"] == "Bearer x"


def test_chat_stream_through_sdk_yields_role_then_chunks_then_stop(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(model="gpt-test", messages=MSGS, stream=True)  # type: ignore[arg-type]
    with stream:
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert all(c.model == "gpt-test" for c in chunks)
    first, *content, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert first.choices[0].finish_reason is None
    assert len(content) == 5
    assert "".join(c.choices[0].delta.content or "" for c in content) == DEFAULT_CONTENT
    assert all(c.choices[0].finish_reason is None for c in content)
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None
    assert last.choices[0].delta.role is None
    assert all(c.usage is None for c in chunks)


def test_stream_usage_chunk_only_when_include_usage_requested(client: openai.OpenAI) -> None:
    with client.chat.completions.create(
        model="gpt-test",
        messages=MSGS,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    *rest, usage_chunk = chunks
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    u = usage_chunk.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens > 0
    assert rest[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in rest)

    for options in (None, {"include_usage": False}):
        extra = {"stream_options": options} if options else {}
        with client.chat.completions.create(
            model="gpt-test",
            messages=MSGS,  # type: ignore[arg-type]
            stream=True,
            **extra,  # type: ignore[arg-type]
        ) as stream:
            chunks = list(stream)
        assert all(c.choices for c in chunks)
        assert all(c.usage is None for c in chunks)


def test_stream_wire_format_is_chunked_sse_ending_with_done(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(stream=True))
        assert resp.status == 200
        assert resp.getheader("content-type", "").startswith("text/event-stream")
        assert resp.getheader("transfer-encoding") == "chunked"
        assert resp.getheader("content-length") is None
        payloads = sse_payloads(resp.read())
    assert payloads[-1] == "[DONE]"
    objs = [json.loads(p) for p in payloads[:-1]]
    assert len(objs) == 1 + 5 + 1
    assert objs[-1]["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert all("usage" not in o for o in objs)


def test_chunks_setting_controls_number_of_content_chunks(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(stream=True), {"x-fake-chunks": "2"})
        objs = [json.loads(p) for p in sse_payloads(resp.read())[:-1]]
    assert [o["choices"][0]["delta"].get("content") for o in objs] == [
        "",
        DEFAULT_CONTENT[: len(DEFAULT_CONTENT) // 2],
        DEFAULT_CONTENT[len(DEFAULT_CONTENT) // 2 :],
        None,
    ]


def test_logprobs_included_only_when_requested(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-test",
        messages=MSGS,  # type: ignore[arg-type]
        logprobs=True,
        top_logprobs=2,
    )
    lp = resp.choices[0].logprobs
    assert lp is not None
    assert lp.content
    assert "".join(t.token for t in lp.content) == DEFAULT_CONTENT
    for tok in lp.content:
        assert tok.logprob <= 0
        assert tok.bytes == list(tok.token.encode())
        assert len(tok.top_logprobs) == 2
        assert tok.top_logprobs[0].token == tok.token

    plain = client.chat.completions.create(model="gpt-test", messages=MSGS)  # type: ignore[arg-type]
    assert plain.choices[0].logprobs is None


async def test_async_sdk_client_streams_from_the_fake(up: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=up.base_url, api_key="x", max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(
            model="gpt-test",
            messages=MSGS,  # type: ignore[arg-type]
            stream=True,
        )
        text = ""
        async with stream:
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
    assert text == DEFAULT_CONTENT


# ------------------------------------------------------------- other endpoints


def test_legacy_completions_non_stream_and_stream(client: openai.OpenAI) -> None:
    resp = client.completions.create(model="davinci-test", prompt="Once upon")
    assert resp.object == "text_completion"
    assert resp.model == "davinci-test"
    assert resp.choices[0].text == DEFAULT_CONTENT
    assert resp.choices[0].index == 0
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].logprobs is None
    assert resp.usage is not None
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    with client.completions.create(
        model="davinci-test",
        prompt="Once upon",
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    *body, usage_chunk = chunks
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in body) == DEFAULT_CONTENT
    assert body[-1].choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None


def test_legacy_completions_logprobs_shape(client: openai.OpenAI) -> None:
    resp = client.completions.create(model="m", prompt="x", logprobs=1)
    lp = resp.choices[0].logprobs
    assert lp is not None
    assert lp.tokens is not None
    assert "".join(lp.tokens) == DEFAULT_CONTENT
    assert lp.token_logprobs is not None
    assert len(lp.token_logprobs) == len(lp.tokens)
    assert lp.text_offset is not None
    assert lp.text_offset[0] == 0


@pytest.mark.parametrize(
    ("inp", "count"),
    [("hello world", 1), (["a", "b", "c"], 3), ([1, 2, 3], 1), ([[1, 2], [3]], 2)],
)
def test_embeddings_for_string_and_list_inputs(client: openai.OpenAI, inp: Any, count: int) -> None:
    resp = client.embeddings.create(model="emb-test", input=inp, encoding_format="float")
    assert resp.object == "list"
    assert resp.model == "emb-test"
    assert [d.index for d in resp.data] == list(range(count))
    assert all(d.object == "embedding" for d in resp.data)
    assert all(len(d.embedding) == 8 for d in resp.data)
    assert all(isinstance(x, float) for d in resp.data for x in d.embedding)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens > 0


def test_embeddings_are_deterministic_and_support_base64(up: FakeUpstream) -> None:
    body = {"model": "e", "input": ["alpha", "beta"]}
    with connect(up) as conn:
        floats = json.loads(send(conn, "/v1/embeddings", body).read())
        again = json.loads(send(conn, "/v1/embeddings", body).read())
        b64 = json.loads(send(conn, "/v1/embeddings", {**body, "encoding_format": "base64"}).read())
    assert floats["data"] == again["data"]
    assert floats["data"][0]["embedding"] != floats["data"][1]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)


def test_models_list_and_health(up: FakeUpstream, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    assert models.data[0].object == "model"
    assert client.models.retrieve("fake-model").id == "fake-model"
    with connect(up) as conn:
        resp = send(conn, "/health")
        assert resp.status == 200
        assert json.loads(resp.read()) == {"status": "ok"}


def test_malformed_json_body_gets_400_envelope(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, b"{not json")
        assert resp.status == 400
        err = json.loads(resp.read())["error"]
        assert err["type"] == "invalid_request_error"
        assert set(err) == {"message", "type", "param", "code"}
        # connection still usable afterwards
        assert send(conn, "/health").status == 200
    assert up.requests[0]["json"] is None
    assert up.requests[0]["raw"] == b"{not json"


def test_unknown_path_gets_404_envelope(up: FakeUpstream, client: openai.OpenAI) -> None:
    with connect(up) as conn:
        resp = send(conn, "/v1/nope", {"x": 1})
        assert resp.status == 404
        assert json.loads(resp.read())["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


# ----------------------------------------------------------- behaviour control


def test_header_override_applies_to_that_request_only(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(), {"x-fake-content": "custom reply"})
        assert json.loads(resp.read())["choices"][0]["message"]["content"] == "custom reply"
        resp = send(conn, CHAT, chat_body(), {"x-fake-status": "503"})
        assert resp.status == 503
        resp.read()
        resp = send(conn, CHAT, chat_body())
        assert resp.status == 200
        assert json.loads(resp.read())["choices"][0]["message"]["content"] == DEFAULT_CONTENT
    assert up.behaviour == Behaviour()
    assert up.requests[0]["headers"]["x-fake-content"] == "custom reply"


def test_sdk_extra_headers_drive_a_single_request(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-test",
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"X-Fake-Content": "via sdk"},
    )
    assert resp.choices[0].message.content == "via sdk"


def test_default_behaviour_applies_to_all_requests_until_reset(up: FakeUpstream) -> None:
    up.behaviour.content = "changed"
    with connect(up) as conn:
        for _ in range(2):
            msg = json.loads(send(conn, CHAT, chat_body()).read())["choices"][0]["message"]
            assert msg["content"] == "changed"
        up.reset()
        assert up.requests == []
        assert up.connections_opened == 0
        msg = json.loads(send(conn, CHAT, chat_body()).read())["choices"][0]["message"]
        assert msg["content"] == DEFAULT_CONTENT
    assert len(up.requests) == 1


def test_unknown_or_invalid_fake_header_is_rejected_loudly(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(), {"x-fake-no-such-knob": "1"})
        assert resp.status == 400
        assert "x-fake-no-such-knob" in json.loads(resp.read())["error"]["message"]
        resp = send(conn, CHAT, chat_body(), {"x-fake-drop": "sometimes"})
        assert resp.status == 400
        resp.read()
        resp = send(conn, CHAT, chat_body(), {"x-fake-status": "abc"})
        assert resp.status == 400
        resp.read()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_forced_status_returns_openai_error_envelope_with_retry_after(
    up: FakeUpstream, status: int
) -> None:
    up.behaviour.status = status
    up.behaviour.retry_after = 7
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body())
        assert resp.status == status
        assert resp.getheader("retry-after") == "7"
        assert resp.getheader("content-type") == "application/json"
        assert json.loads(resp.read()) == ENVELOPE_500


def test_retry_after_header_override_and_sdk_error_mapping(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-test",
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers={"x-fake-status": "429", "x-fake-retry-after": "1.5"},
        )
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "1.5"
    assert info.value.body == ENVELOPE_500["error"]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-test",
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers={"x-fake-status": "503"},
        )


def test_api_key_is_enforced_when_configured() -> None:
    with FakeUpstream(api_key="sekret").start() as server:
        with openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError) as info:
                bad.models.list()
            assert info.value.body["code"] == "invalid_api_key"  # type: ignore[index]
            # can be switched off per request
            models = bad.models.list(extra_headers={"x-fake-require-auth": "false"})
            assert models.data
        with openai.OpenAI(base_url=server.base_url, api_key="sekret", max_retries=0) as good:
            assert good.models.list().data
        assert server.errors == []


# --------------------------------------------------------------------- framing


def test_chunked_flag_sends_non_stream_body_with_chunked_encoding(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(), {"x-fake-chunked": "true"})
        assert resp.getheader("transfer-encoding") == "chunked"
        assert resp.getheader("content-length") is None
        assert json.loads(resp.read())["choices"][0]["message"]["content"] == DEFAULT_CONTENT
        # keep-alive still works after a chunked body
        resp = send(conn, CHAT, chat_body())
        assert resp.getheader("content-length") is not None
        resp.read()
    assert up.connections_opened == 1


def test_close_delimited_body_ends_at_connection_close(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(), {"x-fake-close-delimited": "1"})
        assert resp.getheader("transfer-encoding") is None
        assert resp.getheader("content-length") is None
        assert resp.getheader("connection") == "close"
        assert json.loads(resp.read())["object"] == "chat.completion"


def test_chunked_request_body_is_accepted(up: FakeUpstream) -> None:
    def parts() -> Iterator[bytes]:
        data = json.dumps(chat_body()).encode()
        yield data[:10]
        yield data[10:]

    with connect(up) as conn:
        conn.request(
            "POST",
            CHAT,
            parts(),
            {"content-type": "application/json", "transfer-encoding": "chunked"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    assert up.requests[0]["json"] == chat_body()


def test_keepalive_reuses_one_connection_for_many_requests(
    up: FakeUpstream, client: openai.OpenAI
) -> None:
    with connect(up) as conn:
        for _ in range(3):
            resp = send(conn, CHAT, chat_body())
            assert resp.getheader("connection") == "keep-alive"
            resp.read()
        resp = send(conn, CHAT, chat_body(stream=True))
        resp.read()
    assert up.connections_opened == 1
    assert len({r["conn"] for r in up.requests}) == 1

    up.reset()
    for _ in range(3):
        client.chat.completions.create(model="gpt-test", messages=MSGS)  # type: ignore[arg-type]
    assert up.connections_opened == 1


def test_connection_close_request_is_honoured(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, "/health", headers={"connection": "close"})
        assert resp.getheader("connection") == "close"
        resp.read()
        resp = send(conn, "/health")  # http.client reconnects
        resp.read()
    assert up.connections_opened == 2


def test_keep_alive_false_closes_after_each_response(up: FakeUpstream) -> None:
    up.behaviour.keep_alive = False
    with connect(up) as conn:
        for _ in range(2):
            resp = send(conn, "/health")
            assert resp.getheader("connection") == "close"
            resp.read()
    assert up.connections_opened == 2


# ------------------------------------------------------------------ misbehaving


def test_drop_before_headers_closes_without_answer(up: FakeUpstream) -> None:
    with connect(up) as conn, pytest.raises(http.client.RemoteDisconnected):
        send(conn, CHAT, chat_body(), {"x-fake-drop": "before_headers"})
    assert len(up.requests) == 1  # the request was still received and recorded


def test_drop_before_headers_surfaces_as_sdk_connection_error(
    up: FakeUpstream, client: openai.OpenAI
) -> None:
    up.behaviour.drop = "before_headers"
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-test", messages=MSGS)  # type: ignore[arg-type]


def test_drop_reset_aborts_with_rst(up: FakeUpstream) -> None:
    with connect(up) as conn, pytest.raises(ConnectionResetError):
        send(conn, CHAT, chat_body(), {"x-fake-drop": "reset"})


@pytest.mark.parametrize("chunked", ["false", "true"])
def test_drop_mid_body_sends_half_then_closes(up: FakeUpstream, chunked: str) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(), {"x-fake-drop": "mid_body", "x-fake-chunked": chunked})
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    partial = info.value.partial
    assert partial.startswith(b'{"id": "chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        json.loads(partial)


def test_drop_mid_stream_sends_two_events_then_closes(up: FakeUpstream) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(stream=True), {"x-fake-drop": "mid_stream"})
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    payloads = sse_payloads(info.value.partial)
    assert len(payloads) == 2
    assert "[DONE]" not in payloads
    assert json.loads(payloads[0])["choices"][0]["delta"]["role"] == "assistant"


def test_drop_mid_stream_breaks_sdk_iteration(up: FakeUpstream, client: openai.OpenAI) -> None:
    up.behaviour.drop = "mid_stream"
    seen = []
    with pytest.raises(openai.APIConnectionError):
        stream = client.chat.completions.create(
            model="gpt-test",
            messages=MSGS,  # type: ignore[arg-type]
            stream=True,
        )
        with stream:
            seen.extend(stream)
    assert len(seen) <= 2


def test_malformed_stream_sends_one_good_event_then_bad_json_then_done(
    up: FakeUpstream,
) -> None:
    with connect(up) as conn:
        resp = send(conn, CHAT, chat_body(stream=True), {"x-fake-malformed-stream": "true"})
        payloads = sse_payloads(resp.read())
    assert len(payloads) == 3
    assert json.loads(payloads[0])["object"] == "chat.completion.chunk"
    assert payloads[1] == "{not json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(payloads[1])
    assert payloads[2] == "[DONE]"


# ----------------------------------------------------------------------- timing


def test_delay_ms_holds_back_response_headers(up: FakeUpstream) -> None:
    with connect(up) as conn:
        t0 = time.monotonic()
        resp = send(conn, "/health", headers={"x-fake-delay-ms": "200"})
        elapsed = time.monotonic() - t0
        resp.read()
    assert elapsed >= 0.19


def test_chunk_delay_ms_spaces_stream_events_on_the_wire(up: FakeUpstream) -> None:
    delay = 0.1
    with connect(up) as conn:
        resp = send(
            conn,
            CHAT,
            chat_body(stream=True),
            {"x-fake-chunk-delay-ms": str(int(delay * 1000)), "x-fake-chunks": "3"},
        )
        arrivals = []
        while line := resp.readline():
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic())
        resp.read()
    # role + 3 content + stop + [DONE]
    assert len(arrivals) == 6
    # Per-gap bounds are at the mercy of scheduling jitter (a late chunk makes the next gap
    # short); the span across all gaps is not.
    assert arrivals[-1] - arrivals[0] >= 5 * delay * 0.9


def test_chunk_delay_ms_is_visible_through_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=MSGS,  # type: ignore[arg-type]
        stream=True,
        extra_headers={"x-fake-chunk-delay-ms": "80", "x-fake-chunks": "2"},
    )
    arrivals = []
    with stream:
        for _ in stream:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 2 * 0.08  # 3 gaps of 80 ms; slack for jitter
