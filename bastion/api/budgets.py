"""``GET /api/budgets``: the budgets in use and their spend this period (``read``).

An admin sees every budget; a team's key sees its team's budget and the budgets of its
team's keys, never a user's or another team's (a user budget spans teams). The numbers are
the settled spend and what requests in flight have reserved: those every replica shares in
Redis when budgets are shared (``shared``: true), else this worker's ledger (and, shared,
while Redis does not answer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.api.openapi import Param, Reply, Schema, Spec, documented, listing, nullable, obj
from bastion.api.traces import _json, _params
from bastion.errors import InvalidRequest
from bastion.server.types import Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway

_PARAMS = frozenset({"scope", "exceeded"})


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    @documented(LIST_SPEC)
    async def list_budgets(request: Request, ctx: RequestContext) -> Response:
        params = _params(request, _PARAMS)
        scope = params.get("scope")
        if scope is not None and scope not in ("key", "team", "user"):
            raise InvalidRequest("'scope' must be key, team or user", param="scope")
        exceeded = params.get("exceeded")
        if exceeded is not None and exceeded not in ("true", "false"):
            raise InvalidRequest("'exceeded' must be true or false", param="exceeded")
        asker = ctx.principal
        teams = {p.key_id: p.team for p in gw.keys.principals()}
        data: list[dict[str, Any]] = []
        accounts, shared = await gw.spend.listing()
        for account in accounts:
            if not asker.admin and not _visible(account, asker.team, teams):
                continue
            if scope is not None and account["scope"] != scope:
                continue
            if exceeded is not None and account["exceeded"] != (exceeded == "true"):
                continue
            data.append({"object": "budget", **account,
                         "currency": gw.spend.budgets.currency, "shared": shared})
        data.sort(key=lambda a: (a["scope"], a["name"]))
        return _json({"object": "list", "data": data})

    return {"/api/budgets": {"GET": list_budgets}}


def _visible(account: dict[str, Any], team: str | None, teams: dict[str | None, Any]
             ) -> bool:
    if team is None:
        return False
    if account["scope"] == "team":
        return bool(account["name"] == team)
    if account["scope"] == "key":
        return bool(teams.get(account["name"]) == team)
    return False


# ---------------------------------------------------------------------- for /openapi.json
_NUM: Schema = {"type": "number"}
BUDGET = obj({
    "object": {"const": "budget"}, "scope": {"enum": ["key", "team", "user"]},
    "name": {"type": "string"},
    "period": {"enum": ["daily", "weekly", "monthly", "total"]}, "limit": _NUM,
    "soft": nullable(_NUM), "spent": _NUM, "reserved": _NUM, "period_start": _NUM,
    "resets_at": nullable(_NUM), "exceeded": {"type": "boolean"},
    "currency": {"type": "string"}, "shared": {"type": "boolean"}},
    ("object", "scope", "name", "period", "limit", "soft", "spent", "reserved",
     "period_start", "resets_at", "exceeded", "currency", "shared"),
    "A budget and its spend in the current period")
LIST_SPEC = Spec(
    "List budgets and their spend", "keys",
    {200: Reply("The budgets the asker may see", listing(BUDGET, "Budgets"))},
    {400: "An invalid or unknown query parameter"}, params=(
        Param("scope", "query", {"enum": ["key", "team", "user"]}, "Only this scope"),
        Param("exceeded", "query", {"enum": ["true", "false"]},
              "Only budgets that are (or are not) spent")))
