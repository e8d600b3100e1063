"""Roles and what each may do (least privilege: a role has only what it needs).

- ``user``: calls models (``/v1/*``) and sends feedback on its team's answers;
- ``viewer``: reads its team's traces, stats and deployments, nothing else;
- ``developer``: what a user and a viewer may, manages its team's keys (never an
  ``admin`` key, never another team's) and exports its team's data of a user (``subjects``);
- ``admin``: everything, across teams (the master key is the bootstrap admin); erasing a
  user's data is an admin's alone.
"""

from __future__ import annotations

from typing import Literal

Role = Literal["admin", "developer", "viewer", "user"]
Permission = Literal["infer", "feedback", "read", "keys", "subjects", "admin"]
ROLES: tuple[Role, ...] = ("admin", "developer", "viewer", "user")
GRANTS: dict[str, frozenset[str]] = {
    "user": frozenset({"infer", "feedback"}),
    "viewer": frozenset({"read"}),
    "developer": frozenset({"infer", "feedback", "read", "keys", "subjects"}),
    "admin": frozenset({"infer", "feedback", "read", "keys", "subjects", "admin"}),
}
# the roles a key of each role may create or change (developers: not above their own)
MAY_GRANT: dict[str, frozenset[str]] = {
    "developer": frozenset({"developer", "viewer", "user"}),
    "admin": frozenset(ROLES),
}


def allowed(role: str, permission: str) -> bool:
    return permission in GRANTS.get(role, frozenset())


def permission_for(path: str) -> Permission:
    """What a request to ``path`` needs (``/v1/*``, ``/api/*`` and ``/metrics``)."""
    if path.startswith("/v1/"):
        return "infer"
    if path == "/api/feedback":
        return "feedback"
    if path.startswith("/api/keys"):
        return "keys"
    if path.startswith("/api/users/"):  # /api/users/{user}/erase | /export
        return "admin" if path.endswith("/erase") else "subjects"
    if path in ("/api/config/reload", "/metrics") or path.startswith(
            ("/api/audit", "/api/data-keys")):
        return "admin"
    return "read"
