"""The admission stage: decides each request's :class:`Claim` (priority, tenant, weight).

Run once per request, before the body is parsed, from the settings' ``admission`` section:

- tenant: an authenticated principal's team (when governance provides one) wins; else the
  ``tenant_header``; else the anonymous tenant ``""``;
- priority: the tenant's configured ``priority``, else ``default_priority``; a request may
  ask for another with the ``priority_header`` (0 most urgent … 9), but never for one more
  urgent than its tenant's ``best_priority`` (else the global ``best_priority``); a virtual
  key's ``priority`` is its requests' default and the most urgent they may ask for;
- weight and queue cap: the tenant's ``weight`` and ``max_queued`` (else
  ``max_queued_per_tenant``).

Claims are cached per (tenant, priority asked, key's priority), so a request costs two
header look-ups.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bastion.config import AdmissionSettings
from bastion.errors import InvalidRequest
from bastion.routing.fairqueue import Claim

_TENANT = re.compile(r"^[A-Za-z0-9._:@/\-]{1,128}$")
_CACHE_LIMIT = 4096
HeaderLookup = Callable[[bytes], bytes | None]  # a request's header by (lower-case) name


class Admission:
    def __init__(self, settings: AdmissionSettings) -> None:
        self.settings = settings
        self._priority_header = _header_name(settings.priority_header)
        self._tenant_header = _header_name(settings.tenant_header)
        self._claims: dict[tuple[str, int | None, int | None], Claim] = {}
        self.default = self._build("", None)

    def claim(self, header: HeaderLookup, tenant: str | None = None,
              own: int | None = None) -> Claim:
        """The claim for a request whose headers ``header(name)`` returns; ``tenant``: the
        authenticated principal's, if any; ``own``: its key's priority (its default, and
        the most urgent it may ask for; never above its tenant's ``best_priority``)."""
        if tenant is None and self._tenant_header is not None:
            raw = header(self._tenant_header)
            if raw is not None:
                tenant = raw.decode("latin-1")
                if not _TENANT.match(tenant):
                    raise InvalidRequest(
                        f"{self.settings.tenant_header} must be 1-128 characters of "
                        "letters, digits and ._:@/-",
                        param=self.settings.tenant_header,
                    )
        asked: int | None = None
        if self._priority_header is not None:
            raw = header(self._priority_header)
            if raw is not None:
                if len(raw) != 1 or not raw.isdigit():
                    raise InvalidRequest(
                        f"{self.settings.priority_header} must be a priority from 0 (most "
                        "urgent) to 9",
                        param=self.settings.priority_header,
                    )
                asked = int(raw)
        if tenant is None and asked is None and own is None:
            return self.default
        key = (tenant or "", asked, own)
        claim = self._claims.get(key)
        if claim is None:
            if len(self._claims) >= _CACHE_LIMIT:
                self._claims.clear()
            claim = self._claims[key] = self._build(tenant or "", asked, own)
        return claim

    def _build(self, tenant: str, asked: int | None, key_priority: int | None = None
               ) -> Claim:
        settings = self.settings
        own = settings.tenants.get(tenant)
        priority = settings.default_priority
        best = settings.best_priority
        weight = 1.0
        max_queued = settings.max_queued_per_tenant
        if own is not None:
            if own.priority is not None:
                priority = own.priority
            if own.best_priority is not None:
                best = own.best_priority
            weight = own.weight
            if own.max_queued is not None:
                max_queued = own.max_queued
        if key_priority is not None:  # its default and its best, within the tenant's
            priority = best = max(key_priority, best)
        if asked is not None:
            priority = max(asked, best)
        return Claim(priority=priority, tenant=tenant, weight=weight, max_queued=max_queued)


def _header_name(name: str | None) -> bytes | None:
    return name.strip().lower().encode("latin-1") if name else None
