"""The store's one error: the database cannot be reached or used right now.

Callers treat it as transient: the trace writer spills to its journal and retries, the
admin API answers 503 ``store_unavailable``. A record the database refuses (a bug, bad
data) is not this error: it propagates as the driver's own exception.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc


class StoreUnavailable(Exception):
    """Any connectivity or operational failure of the database (wraps the driver's error)."""


UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # connection refused or lost, database locked, disk full ...
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection in time
    sa_exc.DisconnectionError,
    sqlite3.OperationalError,  # raised by the connection setup, outside SQLAlchemy's wrapping
)


@contextlib.contextmanager
def unavailable_as_store_error(what: str) -> Iterator[None]:
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc
    except sa_exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split())[:300] or type(orig).__name__
