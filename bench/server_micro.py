#!/usr/bin/env python3
"""Micro-benchmark of bastion/server/http.py alone: Python cost per request, no sockets.

An :class:`HTTPProtocol` gets a fake transport (``write`` keeps the bytes) and a handler
that answers at once, so what is timed is parsing, the per-request task, response
framing, keep-alive bookkeeping, and the event-loop turn that runs the task: the server's
share of the hot path. It is timed in thread CPU time, and the best of several repeats is
reported, which makes it usable on a noisy machine where whole-process CPU readings move
by +-20 %. Compare two versions by running both alternately a few times.

    .venv/bin/python bench/server_micro.py [--n 20000] [--repeat 7]
    BASTION_SRC=/path/to/other/checkout .venv/bin/python bench/server_micro.py   # compare
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.environ.get("BASTION_SRC", os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

import uvloop

from bastion.server import http
from bastion.server.types import Request, Response

_REQ_BODY = (
    b'{"model":"fake-model","messages":[{"role":"user","content":"Say hello in one short '
    b'sentence."}],"max_tokens":16}'
)
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:15000\r\n"
    b"Content-Type: application/json\r\nAuthorization: Bearer sk-bench-0123456789abcdef\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_REQ_BODY), _REQ_BODY)
)
BODY = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}' * 6
HEADERS = [(b"content-type", b"application/json"), (b"x-request-id", b"0677cb47ce3d00000001"),
           (b"x-bastion-overhead-ms", b"0.031")]


class FakeTransport:
    def __init__(self) -> None:
        self.n = 0
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.n += 1
        self.bytes += len(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def handler(request: Request) -> Response:
    return Response(200, BODY, list(HEADERS))


async def run(n: int, repeat: int) -> list[float]:
    server = http.HTTPServer(handler)
    proto = http.HTTPProtocol(server)
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    sleep0 = asyncio.sleep
    out = []
    for _ in range(repeat):
        t0 = time.thread_time()
        for _ in range(n):
            proto.data_received(REQUEST)
            await sleep0(0)  # the request task runs
        out.append((time.thread_time() - t0) / n * 1e6)
    assert transport.n == n * repeat, transport.n
    proto.connection_lost(None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    res = uvloop.run(run(a.n, a.repeat))
    median = sorted(res)[len(res) // 2]
    print(f"{http.__file__}: best {min(res):.2f} us/request, median {median:.2f}")


if __name__ == "__main__":
    main()
