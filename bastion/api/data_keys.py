"""Admin API over the data keys trace bodies are encrypted under (admins only).

    GET    /api/data-keys           the keys, the traces sealed under each, the plaintext
                                    ones, and how many re-encryption has still to seal
    POST   /api/data-keys/rotate    a new data key, current at once (every process writes
                                    under it from its next batch); the ingest re-encrypts
                                    the older bodies in the background, while idle
    DELETE /api/data-keys/{id}      drops a key once no trace is sealed under it (409
                                    ``data_key_in_use`` before: the current key, or
                                    bodies re-encryption has not reached yet)

Rotation does not block requests: it is one row in ``data_keys``; the re-encryption runs in
the ingest processes, a batch per transaction, and resumes after a restart by itself (it
looks for bodies not under the current key). ``bastion keys rotate-data-key`` calls these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from bastion.api.keys import actor
from bastion.api.openapi import Param, Reply, Spec, documented, nullable, obj
from bastion.api.traces import _in_store, _json, _params
from bastion.errors import ClientError, NotFound
from bastion.server.types import Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway

PREFIX = "/api/data-keys/"


class DataKeyInUseError(ClientError):
    status = 409
    default_code = "data_key_in_use"


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    @documented(STATUS_SPEC)
    async def status(request: Request, ctx: RequestContext) -> Response:
        _params(request, frozenset())
        return _json(await _in_store(gw, lambda s: s.body_keys.status()))

    @documented(ROTATE_SPEC)
    async def rotate(request: Request, ctx: RequestContext) -> Response:
        _params(request, frozenset())
        new = await _in_store(gw, lambda s: s.body_keys.rotate())
        await gw.audit.record(actor(ctx), "data_key.rotate", str(new), {"current": new})
        return _json(await _in_store(gw, lambda s: s.body_keys.status()), 201)

    return {"/api/data-keys": {"GET": status}, "/api/data-keys/rotate": {"POST": rotate}}


def prefixed(gw: Gateway) -> list[tuple[str, dict[str, Endpoint]]]:
    @documented(DROP_SPEC)
    async def drop(request: Request, ctx: RequestContext) -> Response:
        _params(request, frozenset())
        raw = unquote(request.path[len(PREFIX):])
        if not raw.isdigit() or len(raw) > 9:
            raise NotFound(f"No data key '{raw[:32]}' (ids are numbers)",
                           code="data_key_not_found", param="id")
        key_id = int(raw)
        from bastion.store.crypto import DataKeyInUse

        def job(store: Any) -> None:
            store.body_keys.drop(key_id)

        try:
            await _in_store(gw, job)
        except DataKeyInUse as exc:
            raise DataKeyInUseError(str(exc), param="id") from exc
        except LookupError as exc:
            raise NotFound(str(exc), code="data_key_not_found", param="id") from exc
        await gw.audit.record(actor(ctx), "data_key.drop", str(key_id), None)
        return _json({"id": key_id, "dropped": True})

    return [(PREFIX, {"DELETE": drop})]


# ---------------------------------------------------------------------- for /openapi.json
_INT = {"type": "integer", "minimum": 0}
_KEY = obj({"id": _INT, "created_at": {"type": "number"}, "current": {"type": "boolean"},
            "traces": _INT}, ("id", "created_at", "current", "traces"),
           "One data key (never the key itself)")
_STATUS = obj({"current": nullable(_INT), "encrypt_bodies": {"type": "boolean"},
               "keys": {"type": "array", "items": _KEY}, "plaintext_traces": _INT,
               "to_reencrypt": _INT},
              ("current", "encrypt_bodies", "keys", "plaintext_traces", "to_reencrypt"))
_ERRORS: dict[int | str, str] = {
    400: "A query parameter (it takes none)",
    503: "The store is unavailable (store_unavailable), or store.encryption_key does not "
         "open its data keys",
}
STATUS_SPEC = Spec(
    "The data keys of trace bodies", "keys", {200: Reply("The keys and what is under each",
                                                       _STATUS)}, _ERRORS,
    description="Admins only. to_reencrypt: traces not yet under the current key (the "
                "ingest re-encrypts them in the background).")
ROTATE_SPEC = Spec(
    "Rotate the data key", "keys", {201: Reply("The keys, the new one current", _STATUS)},
    _ERRORS,
    description="Admins only. A new data key encrypts every write from now on; the older "
                "bodies are re-encrypted in the background. Drop an old key "
                "(DELETE /api/data-keys/{id}) once no trace is under it.")
DROP_SPEC = Spec(
    "Drop an old data key", "keys", {200: Reply("Dropped", obj(
        {"id": _INT, "dropped": {"const": True}}, ("id", "dropped")))},
    {**_ERRORS, 404: "No data key with this id (data_key_not_found)",
     409: "The current key, or traces are still sealed under it (data_key_in_use)"},
    params=(Param("id", "path", _INT, "The data key's id", required=True),),
    method="DELETE", path="/api/data-keys/{id}",
    description="Admins only. Irreversible: a body still under the key could never be "
                "read again, so the store refuses while any is.")
