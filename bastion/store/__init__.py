"""The trace store: one schema over SQLite (embedded default) and Postgres (scale).

    open_store(url, home) ─► Store
        insert_traces(records)          one transaction, idempotent on trace id
        get_trace(id)                   the record and its feedback
        list_traces(TraceQuery, cursor) newest first, keyset pages
        stats(since, until, bucket_s, group_by)
        upsert_feedback(fb)             one row per (request_id, key)
        delete_before(ts)               retention (Postgres: drops partitions)
        retention.delete_team_before()  per-team retention (row deletes)
        subjects.erase(user)            a data subject's rows erased, verified
        subjects.trace_page(user, ...)  ... and exported
        open_body(id, row)              a stored body row in the clear (or body_error)
        body_keys.rotate() / .status() / .drop(id), reencrypt_bodies(limit)
        count_traces(), ping(), close()

Only this package touches SQL. Modules: ``schema`` (the tables), ``migrations`` (ordered,
named, recorded; applied on open under a lock), ``engine`` (URL, pool, SQLite pragmas),
``partitions`` (Postgres range partitions), ``records`` (records to rows and back),
``query`` (filters, cursors), ``stats`` (aggregates), ``erase`` (data subjects),
``retention`` (per-team TTL), ``crypto`` (bodies sealed with AES-256-GCM, the blind text
index), ``datakeys`` (the data keys: rotation, re-encryption), ``store`` (the API).
"""

from bastion.store.errors import StoreUnavailable
from bastion.store.query import TraceQuery
from bastion.store.store import Store, open_store

__all__ = ["Store", "StoreUnavailable", "TraceQuery", "open_store"]
