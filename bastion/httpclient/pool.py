"""Connection pool for one (scheme, host, port): LIFO idle stack, bounded size, waiters."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque

from .connection import Connection
from .errors import ConnectError, ConnectTimeout, HTTPClientError

__all__ = ["Pool"]


class Pool:
    __slots__ = (
        "_all",
        "_closed",
        "_expiry",
        "_host",
        "_idle",
        "_loop",
        "_max",
        "_n",
        "_port",
        "_server_hostname",
        "_ssl",
        "_sweep",
        "_waiters",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._loop = loop
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server_hostname = host if ssl_context is not None else None
        self._max = max(1, max_connections)
        self._expiry = keepalive_expiry
        self._idle: list[Connection] = []  # oldest first; reuse pops the newest
        self._all: set[Connection] = set()
        self._n = 0  # connections counted against _max (connecting + open)
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    # ------------------------------------------------------------------ acquire / release

    def take_idle(self) -> Connection | None:
        """Synchronous fast path: the newest idle connection that is alive and fresh."""
        idle = self._idle
        if not idle:
            return None
        cutoff = self._loop.time() - self._expiry
        while idle:
            conn = idle.pop()
            conn._idle = False
            if conn._alive and conn._idle_since > cutoff:
                return conn
            conn._close()
        return None

    async def acquire(self, connect_timeout: float, fresh: bool = False) -> Connection:
        idle = self._idle
        while True:
            if self._closed:
                raise HTTPClientError("HTTP client is closed")
            if idle and not fresh:
                conn = self.take_idle()
                if conn is not None:
                    return conn
            if self._n < self._max:
                return await self._connect(connect_timeout)
            if fresh and idle:
                old = idle.pop(0)
                old._idle = False
                old._close()  # frees a slot for the fresh connection
                continue
            w: asyncio.Future[Connection | None] = self._loop.create_future()
            self._waiters.append(w)
            try:
                conn_or_slot = await w
            except asyncio.CancelledError:
                if w.done() and not w.cancelled():
                    handed = w.result()
                    if handed is not None:
                        self._release(handed)
                    else:
                        self._wake_slot()
                raise
            if conn_or_slot is not None:
                if conn_or_slot._alive:
                    return conn_or_slot
                conn_or_slot._close()

    async def _connect(self, connect_timeout: float) -> Connection:
        timeout = connect_timeout
        loop = self._loop
        conn = Connection(self, loop)
        self._n += 1
        self._all.add(conn)
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
        except TimeoutError:
            self._connect_failed(conn)
            raise ConnectTimeout(
                f"connecting to {self._host}:{self._port} timed out after {timeout:g} s"
            ) from None
        except OSError as e:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            self._connect_failed(conn)
            raise ConnectError(f"cannot connect to {self._host}:{self._port}: {e}") from e
        except BaseException:
            self._connect_failed(conn)
            raise
        if self._closed:
            conn._close()
            raise HTTPClientError("HTTP client is closed")
        return conn

    def _connect_failed(self, conn: Connection) -> None:
        conn._alive = False
        if conn._transport is None:
            conn._lost = True
            self._all.discard(conn)
        self._forget(conn)

    def _release(self, conn: Connection) -> None:
        """A connection finished a response and may be reused."""
        if self._closed or not conn._alive:
            conn._close()
            return
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        conn._idle_since = self._loop.time()
        conn._idle = True
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = self._loop.call_at(conn._idle_since + self._expiry, self._on_sweep)

    def _forget(self, conn: Connection) -> None:
        """The connection is closed (or closing): stop counting it, free its slot."""
        if not conn._counted:
            return
        conn._counted = False
        self._n -= 1
        if conn._idle:
            conn._idle = False
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)
        self._wake_slot()

    def _discard(self, conn: Connection) -> None:
        """connection_lost ran: the pool no longer tracks the connection at all."""
        self._all.discard(conn)
        self._forget(conn)

    def _wake_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _on_sweep(self) -> None:
        self._sweep = None
        idle = self._idle
        if not idle:
            return
        cutoff = self._loop.time() - self._expiry
        n = 0
        while n < len(idle) and idle[n]._idle_since <= cutoff:
            n += 1
        if n:
            expired = idle[:n]
            del idle[:n]
            for conn in expired:
                conn._idle = False
                conn._close()
        if idle:
            self._sweep = self._loop.call_at(idle[0]._idle_since + self._expiry, self._on_sweep)

    # ------------------------------------------------------------------ shutdown

    def stats(self) -> tuple[int, int]:
        """(open or connecting connections, idle connections)."""
        return self._n, len(self._idle)

    async def aclose(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn._idle = False
            conn._close()
        for conn in list(self._all):
            if conn._transport is not None and not conn._lost:
                conn._close()
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)  # the waiter sees _closed and raises
        pending = [f for c in list(self._all) if (f := c._wait_lost()) is not None]
        self._all = {c for c in self._all if not c._lost}
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        self._all.clear()
