"""The store's one error: the database cannot be reached or used right now.

Callers treat it as transient: the trace writer spills to its journal and retries, the
admin API answers 503 ``store_unavailable``. A record the database refuses (a bug, bad
data) is not this error: it propagates as the driver's own exception.
"""

from __future__ import annotations


class StoreUnavailable(Exception):
    """Any connectivity or operational failure of the database (wraps the driver's error)."""
