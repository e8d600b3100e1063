"""What the key API may do, as plain functions over request bodies and stored rows: the
checks of a new key, who may see or change which key, and what a key looks like out.

A developer manages its own team's keys of its own rank or below; an admin, every key.
A key that is not the asker's to see is reported as not found (its existence is not
another team's business).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from bastion.config_access import Budget
from bastion.errors import InvalidRequest, NotFound, PermissionDenied
from bastion.governance.keys import Principal, hint, new_token
from bastion.governance.roles import MAY_GRANT, ROLES
from bastion.observe.keymodes import CONTENT_MODES

CREATE_FIELDS = frozenset({"name", "team", "user", "role", "models", "limits", "budget",
                           "guard_policy", "content_mode", "priority", "expires_in",
                           "expires_at", "metadata"})
LIMIT_FIELDS = ("rpm", "tpm", "max_parallel")
_NAME = re.compile(r"^[A-Za-z0-9._:@\-]{1,128}$")
MAX_LIFETIME = 10 * 366 * 86400.0
MAX_GRACE = 30 * 86400.0
PUBLIC = ("id", "hint", "name", "team", "user", "role", "models", "limits", "guard_policy",
          "content_mode", "priority", "metadata", "created_at",
          "expires_at", "revoked_at", "rotated_from")


def public(row: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """A key as the API shows it: never its digest, with its state."""
    out = {k: row.get(k) for k in PUBLIC}
    limits = out.get("limits")
    if limits and "budget" in limits:  # stored with the limits, shown beside them
        limits = dict(limits)
        out["budget"] = limits.pop("budget")
        out["limits"] = limits or None
    else:
        out["budget"] = None
    now = time.time() if now is None else now
    if row.get("revoked_at") is not None:
        out["status"] = "revoked"
    elif row.get("expires_at") is not None and row["expires_at"] <= now:
        out["status"] = "expired"
    else:
        out["status"] = "active"
    out["object"] = "api_key"
    return out


def metadata_of(metadata: Any) -> dict[str, str] | None:
    """A key's or team's ``metadata``: at most 32 short strings to strings (400 else)."""
    if metadata is not None and not (
        isinstance(metadata, dict) and len(metadata) <= 32
        and all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                for k, v in metadata.items())
    ):
        raise InvalidRequest("'metadata' must map at most 32 short strings to strings",
                             param="metadata")
    return metadata


def name_of(value: Any, field: str) -> str | None:
    """A name (team, user, key name, org): 1-128 letters, digits and . _ : @ - (None
    stays None)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidRequest(
            f"'{field}' must be 1-128 characters of letters, digits and . _ : @ -",
            param=field)
    return value


def new_key_row(body: Mapping[str, Any], asker: Principal, known_models: Collection[str],
                digest_of: Any, now: float | None = None,
                known_policies: Collection[str] = ("standard", "none")
                ) -> tuple[str, dict[str, Any]]:
    """The token and the row of a key ``asker`` asks for; 400 naming what is wrong, 403
    for a role or team the asker may not grant, or a guard policy set by a non-admin."""
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown field '{unknown[0]}'; a key takes "
                             f"{', '.join(sorted(CREATE_FIELDS))}", param=unknown[0])
    now = time.time() if now is None else now
    role = body.get("role", "user")
    if role not in ROLES:
        raise InvalidRequest(f"'role' must be one of {', '.join(ROLES)}", param="role")
    team = name_of(body.get("team"), "team")
    if not asker.admin:
        team = team if team is not None else asker.team
        if team != asker.team:
            raise PermissionDenied("A developer creates keys for its own team only",
                                   code="insufficient_permissions")
    if role not in MAY_GRANT.get(asker.role, frozenset()):
        raise PermissionDenied(f"A {asker.role} key may not create a key with role {role}",
                               code="insufficient_permissions")
    if role in ("developer", "viewer") and team is None:
        raise InvalidRequest(f"A {role} key needs a 'team' (what it may read)", param="team")
    models = body.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise InvalidRequest("'models' must be a list of model names", param="models")
        missing = sorted(set(models) - set(known_models))
        if missing:
            raise InvalidRequest(f"'models': no model named {missing[0]!r}", param="models")
        models = sorted(set(models))
    if asker.models is not None:  # a key limited to models makes keys within them only
        if models is None:
            models = sorted(asker.models)
        elif not set(models) <= asker.models:
            raise PermissionDenied("A key limited to models may not grant others: "
                                   f"{sorted(set(models) - asker.models)[0]!r}",
                                   code="insufficient_permissions")
    metadata = metadata_of(body.get("metadata"))
    token = new_token()
    row = {
        **_handling(body, asker, known_policies),
        "limits": _with_budget(_limits(body.get("limits")), body.get("budget")),
        "id": "key_" + secrets.token_hex(8), "digest": digest_of(token), "hint": hint(token),
        "name": name_of(body.get("name"), "name"), "team": team,
        "user": name_of(body.get("user"), "user"), "role": role, "models": models,
        "metadata": metadata, "created_at": now, "expires_at": _expiry(body, now),
        "revoked_at": None, "rotated_from": None,
    }
    return token, row


def _handling(body: Mapping[str, Any], asker: Principal,
              known_policies: Collection[str]) -> dict[str, Any]:
    """How the key's requests are handled: guard policy (an admin's choice: it may switch
    the guards off), content mode (only ever stricter than the team's: the ingest keeps
    the stricter of the two), admission priority (never above its team's best)."""
    policy, mode, priority = (body.get(k) for k in ("guard_policy", "content_mode",
                                                     "priority"))
    if policy is not None:
        if not isinstance(policy, str) or policy not in known_policies:
            raise InvalidRequest("'guard_policy' must name a configured guard policy: "
                                 f"{', '.join(sorted(known_policies))}", param="guard_policy")
        if not asker.admin:
            raise PermissionDenied("Only an admin sets a key's guard policy",
                                   code="insufficient_permissions")
    if mode is not None and mode not in CONTENT_MODES:
        raise InvalidRequest(f"'content_mode' must be one of {', '.join(CONTENT_MODES)}",
                             param="content_mode")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                 or not 0 <= priority <= 9):
        raise InvalidRequest("'priority' must be a whole number from 0 (most urgent) to 9",
                             param="priority")
    return {"guard_policy": policy, "content_mode": mode, "priority": priority}


def _with_budget(limits: dict[str, Any] | None, budget: Any) -> dict[str, Any] | None:
    """The key's budget is kept in its ``limits`` column (``limits.budget``)."""
    if budget is None:
        return limits
    if limits is not None and "budget" in limits:
        raise InvalidRequest("Give the budget once: 'budget' or 'limits.budget'",
                             param="budget")
    return {**(limits or {}), "budget": budget_of(budget, "budget")}


def budget_of(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be an object of limit, period, soft",
                             param=param)
    try:
        return Budget.model_validate(value).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"'{param}{'.' + where if where else ''}': {first['msg']}",
                             param=f"{param}.{where}"[:64] if where else param) from None


def _limits(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise InvalidRequest(f"'limits' must be an object of {', '.join(LIMIT_FIELDS)}",
                             param="limits")
    value = dict(value)
    budget = value.pop("budget", None)  # a rotated key's, kept with its limits
    out: dict[str, Any] = dict(_counts(value)) if value else {}
    if budget is not None:
        out["budget"] = budget_of(budget, "limits.budget")
    return out or None


def _counts(value: dict[str, Any]) -> dict[str, int]:
    for name, n in value.items():
        if name not in LIMIT_FIELDS:
            raise InvalidRequest(f"'limits' takes {', '.join(LIMIT_FIELDS)}; not {name!r}",
                                 param=f"limits.{name}"[:64])
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000_000:
            raise InvalidRequest(f"'limits.{name}' must be a whole number from 1 to "
                                 "1000000000", param=f"limits.{name}")
    return dict(value)


def _expiry(body: Mapping[str, Any], now: float) -> float | None:
    given = [k for k in ("expires_in", "expires_at") if body.get(k) is not None]
    if not given:
        return None
    if len(given) == 2:
        raise InvalidRequest("Give 'expires_in' or 'expires_at', not both", param="expires_at")
    name = given[0]
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidRequest(f"'{name}' must be a number of seconds", param=name)
    at = now + float(value) if name == "expires_in" else float(value)
    if not now < at <= now + MAX_LIFETIME:
        raise InvalidRequest(f"'{name}' must give a time in the future, at most ten years "
                             "away", param=name)
    return at


def visible(row: Mapping[str, Any] | None, asker: Principal, key_id: str) -> dict[str, Any]:
    """The row, if ``asker`` may see it; else 404 (as for a key that does not exist)."""
    if row is None or not (asker.admin or (
            asker.team is not None and row.get("team") == asker.team)):
        raise NotFound(f"No key with id '{key_id}'", code="key_not_found", param="id")
    return dict(row)


def check_may_change(row: Mapping[str, Any], asker: Principal) -> None:
    if row["role"] not in MAY_GRANT.get(asker.role, frozenset()):
        raise PermissionDenied(f"A {asker.role} key may not change a {row['role']} key",
                               code="insufficient_permissions")


def grace_of(body: Mapping[str, Any]) -> float:
    value = body.get("grace_seconds", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value <= MAX_GRACE):
        raise InvalidRequest("'grace_seconds' must be from 0 to 2592000 (30 days)",
                             param="grace_seconds")
    return float(value)


def role_event(before: Mapping[str, Any] | None,
               after: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The audit entry of a role a key change gives: ``role.grant`` for a new key,
    ``role.change`` when a key's role is not the one it had; None when unchanged."""
    old = before.get("role") if before is not None else None
    if before is not None and old == after.get("role"):
        return None
    detail = {"role": after.get("role"), "team": after.get("team")}
    return ("role.grant", detail) if before is None else ("role.change",
                                                         {**detail, "previous": old})
