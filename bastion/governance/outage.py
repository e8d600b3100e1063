"""Whether a shared store (Redis, for the limits and the budgets) answers, as one process
sees it: an outage is logged once when it starts and once when it ends, and while it lasts
one request a second asks the store again (the others decide without it meanwhile)."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit, urlunsplit

RETRY_SECONDS = 1.0  # after a failure, the store is asked again (by one request) then


def redacted(url: str) -> str:
    """The URL without its password (for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Outage:
    """``what`` names the store's users in the log lines (``rate limits``, ``budgets``)."""

    def __init__(self, log: logging.Logger, what: str, url: str) -> None:
        self.log, self.what, self.url = log, what, url
        self.down = False
        self.retry_at = 0.0

    def try_now(self) -> bool:
        """False while the store was found down less than a second ago (the request
        decides without it); True: ask it (the others wait a second for this answer)."""
        if self.down and time.monotonic() < self.retry_at:
            return False
        self.retry_at = time.monotonic() + RETRY_SECONDS
        return True

    def failed(self, exc: BaseException, meanwhile: str) -> None:
        """The store did not answer; ``meanwhile``: what decides until it does (logged)."""
        self.retry_at = time.monotonic() + RETRY_SECONDS
        if not self.down:
            self.down = True
            self.log.warning("%s: Redis at %s does not answer (%s); until it does, %s",
                             self.what, redacted(self.url), type(exc).__name__, meanwhile)

    def answered(self) -> bool:
        """The store answered; True when that ends an outage."""
        self.retry_at = 0.0
        if not self.down:
            return False
        self.down = False
        self.log.warning("%s: Redis at %s answers again; %s are shared again", self.what,
                         redacted(self.url), self.what)
        return True
