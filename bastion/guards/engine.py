"""The policy engine: runs a policy's scanners over texts and applies their actions.

A policy is two ordered lists of rules (``input``, ``output``). Each rule names a scanner,
a score threshold, optionally the kinds of finding it cares about and (input) the message
sources it applies to, and an action:

- ``block``: stop; the request gets a 400 (input) or the answer is replaced by a refusal
  with ``finish_reason: content_filter`` (output). The client is told which policy and
  which kind of check, never what matched or how it scored;
- ``redact``: each finding's span becomes ``[KIND]``;
- ``pseudonymize`` (input): each finding's span becomes a session placeholder
  (``<PERSON_1>``) whose original the vault keeps, and the answer gets the originals back;
- ``flag``: allowed, recorded as flagged (traces, metrics); ``log``: allowed, recorded.

Rules run in order on the text as the previous rules left it. Every rule that found
something yields a :class:`Decision` (scanner, kinds, top score, action, how many, where,
time), whatever the action. The engine is synchronous and pure CPU; the gateway runs it in
a worker thread (:mod:`bastion.guards.stage`).

A scanner that raises is never the client's problem and never a 500. The rule's ``on_error``
decides: ``closed`` (the default for block, redact and pseudonymize rules: what the rule
protects cannot be checked, so the text stops there; the gateway answers 503
``guard_error``) or ``open`` (the default for flag and log rules: the text goes on unchanged,
flagged). Either way the decision carries kind ``SCANNER_ERROR`` and the exception's class,
and the failure is logged (JSON, with the traceback but not the exception's message, which
may quote the text) and counted in ``bastion_guard_errors_total``.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.config import GuardPolicy, GuardRule, GuardSettings
from bastion.errors import ConfigError
from bastion.guards.base import Finding, ScanContext, Scanner, Source, Stage, merge_spans
from bastion.guards.vault import Vault

log = logging.getLogger("bastion.guards")

SCANNER_ERROR = "SCANNER_ERROR"
SEVERITY = {"log": 1, "flag": 2, "redact": 3, "pseudonymize": 3, "block": 4}

# the built-in policy (guards.default: standard, or attached by name)
STANDARD = GuardPolicy.model_validate({
    "input": [
        {"scanner": "secrets", "action": "redact", "threshold": 0.5},
        # the NER model reads the first 800 characters of each text (~13 ms per 1,000
        # here); past that, names are found by their cues (titles, "my name is"...) only
        {"scanner": "pii", "action": "pseudonymize", "threshold": 0.5,
         "options": {"ner_max_chars": 800}},
        {"scanner": "injection", "action": "block", "threshold": 0.5},
    ],
    "output": [
        {"scanner": "secrets", "action": "redact", "threshold": 0.5},
        {"scanner": "canary", "action": "block", "threshold": 0.5},
    ],
})


@dataclass(slots=True)
class Decision:
    stage: Stage
    scanner: str
    action: str
    kinds: list[str]
    score: float
    count: int
    where: str
    ms: float
    error: str | None = None  # the exception's class when the scanner failed

    def as_dict(self) -> dict[str, Any]:
        out = {"stage": self.stage, "scanner": self.scanner, "action": self.action,
               "kinds": self.kinds, "score": round(self.score, 4), "count": self.count,
               "where": self.where, "ms": round(self.ms, 3)}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(slots=True)
class Rule:
    spec: GuardRule
    scanner: Scanner
    kinds: frozenset[str] | None

    @property
    def name(self) -> str:
        return self.spec.scanner

    @property
    def fails_closed(self) -> bool:
        on_error = self.spec.on_error
        if on_error is None:
            return self.spec.action in ("block", "redact", "pseudonymize")
        return on_error == "closed"

    def findings(self, text: str, ctx: ScanContext) -> list[Finding]:
        """What this rule acts on in ``text``: the scanner's findings at or above the
        threshold, of the rule's kinds; none for a source the rule does not cover."""
        spec = self.spec
        if spec.sources is not None and ctx.source not in spec.sources:
            return []
        return [f for f in self.scanner.scan(text, ctx)
                if f.score >= spec.threshold and (self.kinds is None or f.kind in self.kinds)]


@dataclass(slots=True)
class Policy:
    name: str
    input: list[Rule]
    output: list[Rule]

    def uses(self, scanner: str, stage: Stage = "output") -> Rule | None:
        for rule in self.output if stage == "output" else self.input:
            if rule.name == scanner:
                return rule
        return None


@dataclass(slots=True)
class Scanned:
    """One text after a stage: the text as it goes on, what was decided, and the rule that
    blocked it (if one did)."""

    text: str
    decisions: list[Decision] = field(default_factory=list)
    blocked: Decision | None = None
    violations: dict[str, str] = field(default_factory=dict)  # scanner -> first detail


class GuardEngine:
    """Builds every configured policy's scanners once (a bad scanner name or option fails
    at start, naming the rule), resolves which policy a request gets, and scans."""

    def __init__(self, settings: GuardSettings,
                 factories: Mapping[str, Callable[[Mapping[str, Any]], Scanner]],
                 vault: Vault | None = None) -> None:
        self.settings = settings
        self._factories = factories
        self._scanners: dict[tuple[str, str], Scanner] = {}
        self.vault = vault or Vault.from_base64(
            settings.vault_key.get_secret_value() if settings.vault_key else None,
            settings.vault_ttl)
        specs = {"standard": STANDARD, **settings.policies}
        used = {p for p in (settings.default, *settings.attach.keys.values(),
                            *settings.attach.teams.values(), *settings.attach.tenants.values(),
                            *settings.attach.models.values(), *settings.attach.routes.values())
                if p and p != "none"}
        # the attached ones are built now; others (for `bastion guard scan`) when asked
        self.policies: dict[str, Policy] = {}
        self._specs = specs
        for name in sorted(used | set(settings.policies)):
            self.policy(name)

    def policy(self, name: str) -> Policy:
        found = self.policies.get(name)
        if found is not None:
            return found
        spec = self._specs.get(name)
        if spec is None:
            raise ConfigError(f"unknown guard policy {name!r} (known: {sorted(self._specs)})")
        policy = Policy(name, [self._rule(name, "input", i, r) for i, r in enumerate(spec.input)],
                        [self._rule(name, "output", i, r) for i, r in enumerate(spec.output)])
        self.policies[name] = policy
        return policy

    def _rule(self, policy: str, stage: str, index: int, spec: GuardRule) -> Rule:
        where = f"guards.policies.{policy}.{stage}[{index}]"
        factory = self._factories.get(spec.scanner)
        if factory is None:
            raise ConfigError(f"{where}: no scanner {spec.scanner!r} "
                              f"(known: {', '.join(sorted(self._factories))})")
        key = (spec.scanner, repr(sorted(spec.options.items())))
        scanner = self._scanners.get(key)
        if scanner is None:
            try:
                scanner = factory(spec.options)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where}.options: {exc}") from exc
            except ImportError as exc:
                raise ConfigError(f"{where}: scanner {spec.scanner!r} cannot load: {exc}") from exc
            # a first scan loads what loads lazily (an NER pipeline: ~1 s), before traffic
            scanner.scan("Warm-up: Alice Martin wrote from Paris.", ScanContext())
            self._scanners[key] = scanner
        return Rule(spec, scanner, frozenset(spec.kinds) if spec.kinds else None)

    def resolve(self, *, key: str | None = None, team: str | None = None,
                tenant: str | None = None, model: str | None = None,
                route: str | None = None, own: str | None = None) -> Policy | None:
        """The policy for a request: its key's own (``own``), then the one attached to its
        key, team, tenant, model, route, then the default."""
        a = self.settings.attach
        name: str | None = own
        if name is None:
            for table, value in ((a.keys, key), (a.teams, team), (a.tenants, tenant),
                                 (a.models, model), (a.routes, route)):
                if value is not None and value in table:
                    name = table[value]
                    break
            else:
                name = self.settings.default
        if name is None or name == "none":
            return None
        return self.policies.get(name) or self.policy(name)

    # ------------------------------------------------------------------ scanning
    def scan(self, policy: Policy, stage: Stage, text: str, *, source: Source = "prompt",
             where: str = "", session: str = "", values: dict[str, Any] | None = None,
             request_id: str = "") -> Scanned:
        """Runs the stage's rules over one text, in order, applying each one's action."""
        out = Scanned(text)
        rules = policy.input if stage == "input" else policy.output
        ctx = ScanContext(stage=stage, source=source, values=values or {})
        for rule in rules:
            spec = rule.spec
            started = time.perf_counter()
            try:
                findings = rule.findings(out.text, ctx)
            except Exception as exc:  # noqa: BLE001  a scanner's bug: its rule's on_error decides
                decision = _failed(policy, rule, stage, where, started, exc, request_id)
                out.decisions.append(decision)
                if decision.action == "block":
                    out.blocked = decision
                    break
                continue
            if not findings:
                continue
            action = spec.action
            if action == "redact":
                out.text = _replace(out.text, merge_spans(findings), lambda f: f"[{f.kind}]")
            elif action == "pseudonymize":
                out.text = self._pseudonymize(out.text, merge_spans(findings), session)
            decision = Decision(
                stage, rule.name, action, sorted({f.kind for f in findings}),
                max(f.score for f in findings), len(findings), where,
                (time.perf_counter() - started) * 1000)
            out.decisions.append(decision)
            if spec.reask or rule.name == "json_schema":
                out.violations.setdefault(rule.name, _first_detail(findings))
            if action == "block":
                out.blocked = decision
                break
        return out

    def _pseudonymize(self, text: str, findings: list[Finding], session: str) -> str:
        return _replace(text, findings,
                        lambda f: self.vault.pseudonym(session, f.kind, text[f.start:f.end]))


def _failed(policy: Policy, rule: Rule, stage: Stage, where: str, started: float,
            exc: Exception, request_id: str) -> Decision:
    fails = "closed" if rule.fails_closed else "open"
    log.error("guard scanner %r failed (%s) in policy %r, %s; failing %s",
              rule.name, type(exc).__name__, policy.name, stage, fails,
              extra={"request_id": request_id or None, "scanner": rule.name,
                     "policy": policy.name, "stage": stage,
                     "error_type": type(exc).__name__, "fails": fails,
                     "traceback": "".join(traceback.format_tb(exc.__traceback__))})
    return Decision(stage, rule.name, "block" if fails == "closed" else "flag",
                    [SCANNER_ERROR], 0.0, 0, where, (time.perf_counter() - started) * 1000,
                    type(exc).__name__)


def _replace(text: str, findings: list[Finding], placeholder: Callable[[Finding], str]) -> str:
    parts: list[str] = []
    last = 0
    for f in findings:  # non-overlapping, by position
        parts.append(text[last:f.start])
        parts.append(placeholder(f))
        last = f.end
    parts.append(text[last:])
    return "".join(parts)


def _first_detail(findings: list[Finding]) -> str:
    return next((f.detail for f in findings if f.detail), findings[0].kind)


def strongest(decisions: list[Decision]) -> str | None:
    """The most severe action taken (block > redact/pseudonymize > flag > log)."""
    if not decisions:
        return None
    return max(decisions, key=lambda d: SEVERITY.get(d.action, 0)).action
