"""How well a scanner, or anything else that maps text to findings, does on labelled JSONL.

What ``bastion guard eval`` and the benches measure with, so that every number in
docs/benchmarks.md comes from one implementation. Two schemas (those of ../shared/data),
told apart by the dataset's first row:

* **classification** ``{"text", "label": 0|1, ...}``: a row is predicted positive when any
  counted finding has ``score >= threshold``. Reported: the confusion counts, precision,
  recall, F1, F2, balanced accuracy, false-positive rate, accuracy, ROC AUC over each row's
  highest score, optionally a threshold sweep and the threshold that reaches a target FPR.
* **spans** ``{"text", "entities": [{"start", "end", "type"}], ...}`` (character offsets,
  end exclusive): counted findings with ``score >= threshold`` are predicted spans.

  *Type-agnostic* metrics ignore kinds and types. The default rule is **overlap**: two
  spans match when they share at least one character (``a.start < b.end and
  b.start < a.end``); a gold span is *found* when some predicted span matches it (recall),
  a predicted span is *correct* when it matches some gold span (precision). One predicted
  span may find several gold spans and several predicted spans may find one gold span, so
  recall and precision are counted on their own sides. ``strict`` uses the **exact** rule:
  same start and same end. Predicted spans with identical boundaries count once.

  *Per type*: a dataset type (``EMAIL_ADDRESS``, ``GPE``...) maps to the scanner kinds that
  stand for it (:data:`DEFAULT_TYPE_MAP`, overridable; a type absent from the map accepts only
  its own name). Recall of type T: gold T spans matched by a prediction whose kind T accepts.
  Precision of type T: of the predictions whose kind T accepts, those that match a gold span
  whose type accepts that kind (so types sharing a kind, GPE and STREET_ADDRESS both taking
  ``LOCATION``, share its precision). The *structured* aggregate pools the structured types
  (:data:`STRUCTURED_TYPES`: identifiers with a fixed shape) the same way.

A row may also carry ``lang``, ``stage``, ``source`` and ``values``: they reach the detector
in its :class:`ScanContext` (a canary check needs its token, an output scanner its stage).

Latency is the wall time of each row's call (after one untimed warm-up call, which pays for
lazy loading), with p50/p95/p99 overall and p50/p95 by input length (<= 500, <= 4,000 and
> 4,000 characters); :func:`time_lengths` times inputs of exact lengths built by
concatenating the dataset's texts.

What is evaluated is a :data:`Detector`: ``Scanner.scan`` is one, and so is a policy's
input pipeline wrapped as ``(text, ctx) -> findings``. Whoever measures time elsewhere (a
bench running a detector in another process) passes a :data:`TimedDetector` instead.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bastion.evaluation.latency import (
    LENGTH_BUCKETS,
    LatencyReport,
    LatencyStats,
    length_bucket,
    length_inputs,
)
from bastion.guards.base import Finding, ScanContext, Source, Stage

Schema = Literal["classification", "spans"]
MatchRule = Literal["overlap", "exact"]
Detector = Callable[[str, ScanContext], Sequence[Finding]]
# findings and the seconds the call took, as measured by whoever ran it
TimedDetector = Callable[[str, ScanContext], tuple[Sequence[Finding], float]]

# dataset type -> scanner kinds that stand for it (ours and Presidio's names)
DEFAULT_TYPE_MAP: dict[str, tuple[str, ...]] = {
    "EMAIL_ADDRESS": ("EMAIL_ADDRESS", "EMAIL"),
    "PHONE_NUMBER": ("PHONE_NUMBER", "PHONE"),
    "CREDIT_CARD": ("CREDIT_CARD",),
    "IBAN_CODE": ("IBAN_CODE", "IBAN"),
    "IP_ADDRESS": ("IP_ADDRESS",),
    "MAC_ADDRESS": ("MAC_ADDRESS",),
    "US_SSN": ("US_SSN",),
    "URL": ("URL",),
    "DOMAIN_NAME": ("DOMAIN_NAME", "URL"),
    "PERSON": ("PERSON",),
    "STREET_ADDRESS": ("STREET_ADDRESS", "ADDRESS", "LOCATION"),
    "GPE": ("GPE", "LOCATION"),
    "LOCATION": ("LOCATION", "GPE", "ADDRESS", "STREET_ADDRESS"),
    "ZIP_CODE": ("ZIP_CODE", "STREET_ADDRESS", "ADDRESS"),
    "ORGANIZATION": ("ORGANIZATION", "ORG"),
    "DATE_TIME": ("DATE_TIME", "DATE", "DATE_OF_BIRTH"),
    "DATE_OF_BIRTH": ("DATE_OF_BIRTH", "DATE_TIME", "DATE"),
    "NRP": ("NRP",),
}

# identifiers with a fixed shape (most with a checksum), where the targets ask for >= 0.95.
# URL and DOMAIN_NAME are left out: where a domain ends and prose begins is a judgement.
STRUCTURED_TYPES: frozenset[str] = frozenset({
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "MAC_ADDRESS",
    "US_SSN",
    # European national identifiers, as the generated sets name them
    "DE_TAX_ID", "DE_ID_CARD", "FR_NIR", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "NL_BSN",
    "UK_NINO", "UK_NHS",
})


class DatasetError(ValueError):
    """A row that does not fit the schema; the message starts with the file and line."""


# -- rows -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    type: str


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # 1-based line in the file
    text: str
    label: int | None = None  # classification rows
    entities: tuple[Span, ...] = ()  # span rows
    lang: str | None = None
    # optional per-row context: "stage" (input/output), "source" (prompt, document,
    # completion...), "values" (ScanContext.values: canary tokens, the system prompt...)
    stage: Stage = "input"
    source: Source = "prompt"
    values: Mapping[str, Any] = field(default_factory=dict)


def detect_schema(obj: Any) -> Schema:
    """The schema a row is in: ``entities`` makes it a span row, ``label`` a classification
    row. Raises ``ValueError`` for anything else."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError('expected a JSON object with a string "text"')
    if "entities" in obj:
        return "spans"
    if "label" in obj:
        return "classification"
    raise ValueError('a row needs "label" (classification) or "entities" (spans)')


STAGES: tuple[Stage, ...] = ("input", "output")
SOURCES: tuple[Source, ...] = ("prompt", "system", "document", "tool", "completion")


@dataclass(frozen=True, slots=True)
class Positions:
    """Where a row's text sits (its :data:`Source`): read from the row's ``from_field`` (None:
    from no field), else ``fixed`` for every row, else the stage's default. Public datasets often
    use ``source`` for where a row came from (a site, a generator): then name another field,
    or none, and give the position for the whole file."""

    from_field: str | None = "source"
    fixed: Source | None = None


def _context_fields(obj: dict[str, Any], positions: Positions = Positions()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lang = obj.get("lang")
    out["lang"] = lang if isinstance(lang, str) and lang else None
    stage = obj.get("stage", "input")
    if stage not in STAGES:
        raise ValueError(f'"stage" must be one of {", ".join(STAGES)}, not {stage!r}')
    source = positions.fixed or ("completion" if stage == "output" else "prompt")
    name = positions.from_field
    if positions.fixed is None and name is not None and name in obj:
        source = obj[name]
        if source not in SOURCES:
            raise ValueError(
                f'"{name}" is read as where the text sits, one of '
                f'{", ".join(SOURCES)}, not {source!r}; if it says where the row came from, '
                f"read positions from another field (--source-field NAME) or none "
                f"(--source-field ''), or give one for every row (--source prompt|document|...)")
    values = obj.get("values", {})
    if not isinstance(values, dict):
        raise ValueError('"values" must be an object')
    out.update(stage=stage, source=source, values=values)
    return out


def parse_row(obj: Any, line: int, schema: Schema, positions: Positions = Positions()) -> Row:
    """One row in ``schema``; ``ValueError`` says what is wrong (the caller adds where)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError('expected a JSON object with a string "text"')
    text: str = obj["text"]
    context = _context_fields(obj, positions)
    if schema == "classification":
        label = obj.get("label")
        if label is None:
            raise ValueError('missing "label" (the dataset is in the classification schema)')
        if isinstance(label, bool):
            label = int(label)
        if label not in (0, 1) or isinstance(label, float):
            raise ValueError(f'"label" must be 0 or 1, not {label!r}')
        return Row(line, text, label=label, **context)
    entities = obj.get("entities")
    if not isinstance(entities, list):
        raise ValueError('"entities" must be a list (the dataset is in the span schema)')
    spans = []
    for i, entity in enumerate(entities):
        if not isinstance(entity, dict):
            raise ValueError(f"entity {i} is not an object")
        start, end, kind = entity.get("start"), entity.get("end"), entity.get("type")
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool):
            raise ValueError(f'entity {i}: "start" and "end" must be integers')
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"entity {i}: span [{start}, {end}) is empty or outside the text "
                f"({len(text)} characters)"
            )
        if not isinstance(kind, str) or not kind:
            raise ValueError(f'entity {i}: "type" must be a non-empty string')
        spans.append(Span(start, end, kind))
    return Row(line, text, entities=tuple(spans), **context)


def read_rows(lines: Iterable[str], source: str = "<input>", limit: int | None = None,
              schema: Schema | None = None, positions: Positions = Positions(),
              ) -> tuple[Schema, list[Row]]:
    """Rows from JSONL lines (blank lines skipped); the first row fixes the schema unless
    one is given (a row with both ``label`` and ``entities`` is read as spans by default)."""
    rows: list[Row] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if limit is not None and len(rows) >= limit:
            break
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise DatasetError(f"{source}:{number}: not valid JSON ({exc})") from None
        try:
            if schema is None:
                schema = detect_schema(obj)
            rows.append(parse_row(obj, number, schema, positions))
        except ValueError as exc:
            raise DatasetError(f"{source}:{number}: {exc}") from None
    if schema is None or not rows:
        raise DatasetError(f"{source}: no rows")
    return schema, rows


def load_dataset(path: str | Path, limit: int | None = None, schema: Schema | None = None,
                 positions: Positions = Positions()) -> tuple[Schema, list[Row]]:
    with open(path, encoding="utf-8") as fh:
        return read_rows(fh, str(path), limit, schema, positions)


# -- running ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowRun:
    row: Row
    findings: tuple[Finding, ...]
    seconds: float


def timed(detector: Detector) -> TimedDetector:
    def run(text: str, ctx: ScanContext) -> tuple[Sequence[Finding], float]:
        t0 = time.perf_counter()
        findings = detector(text, ctx)
        return findings, time.perf_counter() - t0

    return run


def context_for(row: Row) -> ScanContext:
    return ScanContext(stage=row.stage, source=row.source, values=dict(row.values),
                       language=row.lang)


def run_rows(detector: TimedDetector, rows: Sequence[Row], warmup: bool = True) -> list[RowRun]:
    """Each row through the detector, in order. An exception names the row's line."""
    runs = []
    for i, row in enumerate(rows):
        try:
            if warmup and i == 0:
                detector(row.text, context_for(row))
            findings, seconds = detector(row.text, context_for(row))
        except Exception as exc:
            raise RuntimeError(f"line {row.line}: the detector failed: {exc!r}") from exc
        runs.append(RowRun(row, tuple(findings), seconds))
    return runs


def counted(findings: Iterable[Finding], threshold: float,
            kinds: frozenset[str] | None = None) -> list[Finding]:
    """The findings that count: score at or above the threshold, of the chosen kinds."""
    return [f for f in findings
            if f.score >= threshold and (kinds is None or f.kind in kinds)]


# -- ratios -----------------------------------------------------------------------------


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def fbeta(tp: int, fp: int, fn: int, beta: float) -> float | None:
    """F-beta from counts, ``(1+b²)tp / ((1+b²)tp + b²fn + fp)``: 0 when there were gold
    positives or predictions but no hit, undefined (None) when there were neither."""
    b2 = beta * beta
    den = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / den if den else None


# -- classification ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Confusion:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def fpr(self) -> float | None:
        return ratio(self.fp, self.fp + self.tn)

    @property
    def tnr(self) -> float | None:
        return ratio(self.tn, self.fp + self.tn)

    @property
    def f1(self) -> float | None:
        return fbeta(self.tp, self.fp, self.fn, 1.0)

    @property
    def f2(self) -> float | None:
        return fbeta(self.tp, self.fp, self.fn, 2.0)

    @property
    def balanced_accuracy(self) -> float | None:
        """Mean of recall and specificity; undefined unless both classes are present."""
        if self.recall is None or self.tnr is None:
            return None
        return (self.recall + self.tnr) / 2

    @property
    def accuracy(self) -> float | None:
        return ratio(self.tp + self.tn, self.n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "positives": self.positives, "tp": self.tp, "fp": self.fp,
            "tn": self.tn, "fn": self.fn, "precision": self.precision, "recall": self.recall,
            "f1": self.f1, "f2": self.f2, "balanced_accuracy": self.balanced_accuracy,
            "fpr": self.fpr, "accuracy": self.accuracy,
        }


def row_score(findings: Iterable[Finding], kinds: frozenset[str] | None = None) -> float | None:
    """The highest score among the row's findings (of the chosen kinds); None: no finding."""
    scores = [f.score for f in findings if kinds is None or f.kind in kinds]
    return max(scores) if scores else None


def confusion(scores: Sequence[float | None], labels: Sequence[int],
              threshold: float) -> Confusion:
    tp = fp = tn = fn = 0
    for score, label in zip(scores, labels, strict=True):
        predicted = score is not None and score >= threshold
        if predicted and label:
            tp += 1
        elif predicted:
            fp += 1
        elif label:
            fn += 1
        else:
            tn += 1
    return Confusion(tp, fp, tn, fn)


def threshold_for_fpr(scores: Sequence[float | None], labels: Sequence[int],
                      target: float) -> float:
    """The lowest threshold whose false-positive rate is at most ``target`` (so the one with
    the best recall among those). Candidates are the rows' scores; when even the highest
    score has too many negatives, the threshold is just above it (nothing is positive)."""
    negatives = sum(1 for label in labels if not label)
    values = sorted({s for s in scores if s is not None}, reverse=True)
    by_score = Counter(s for s, label in zip(scores, labels, strict=True)
                       if s is not None and not label)
    if not values:
        return math.inf
    best = math.nextafter(values[0], math.inf)
    fp = 0
    for value in values:
        fp += by_score.get(value, 0)
        if negatives and fp / negatives > target:
            break
        best = value
    return best


def roc_auc(scores: Sequence[float | None], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve of the rows' highest scores (no finding ranks below any
    score), as the Mann-Whitney statistic with ties counted half. None with one class."""
    ranked = sorted(
        ((-math.inf if s is None else s), label)
        for s, label in zip(scores, labels, strict=True)
    )
    pos = sum(1 for _, label in ranked if label)
    neg = len(ranked) - pos
    if not pos or not neg:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid_rank = (i + 1 + j) / 2  # ranks i+1..j share their mean
        rank_sum += mid_rank * sum(1 for _, label in ranked[i:j] if label)
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


DEFAULT_SWEEP = tuple(round(0.1 * i, 1) for i in range(1, 10))


@dataclass(slots=True)
class ClassificationReport:
    threshold: float
    kinds: list[str] | None
    confusion: Confusion
    auc: float | None
    sweep: list[tuple[float, Confusion]] = field(default_factory=list)
    target_fpr: float | None = None
    target_threshold: float | None = None
    target_confusion: Confusion | None = None
    false_positives: list[int] = field(default_factory=list)  # line numbers
    false_negatives: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "threshold": self.threshold, "kinds": self.kinds, **self.confusion.to_dict(),
            "roc_auc": self.auc,
        }
        if self.sweep:
            out["sweep"] = [{"threshold": t, **c.to_dict()} for t, c in self.sweep]
        if self.target_fpr is not None and self.target_confusion is not None:
            out["target"] = {
                "fpr": self.target_fpr,
                "threshold": _finite(self.target_threshold),
                **self.target_confusion.to_dict(),
            }
        out["false_positive_lines"] = self.false_positives
        out["false_negative_lines"] = self.false_negatives
        return out


def evaluate_classification(
    runs: Sequence[RowRun], threshold: float = 0.5, kinds: Iterable[str] | None = None,
    target_fpr: float | None = None, sweep: Sequence[float] = (),
) -> ClassificationReport:
    chosen = frozenset(kinds) if kinds is not None else None
    scores = [row_score(r.findings, chosen) for r in runs]
    labels = [r.row.label or 0 for r in runs]
    report = ClassificationReport(
        threshold=threshold, kinds=sorted(chosen) if chosen is not None else None,
        confusion=confusion(scores, labels, threshold), auc=roc_auc(scores, labels),
        sweep=[(t, confusion(scores, labels, t)) for t in sweep],
    )
    if target_fpr is not None:
        t = threshold_for_fpr(scores, labels, target_fpr)
        report.target_fpr, report.target_threshold = target_fpr, t
        report.target_confusion = confusion(scores, labels, t)
    for run, score, label in zip(runs, scores, labels, strict=True):
        predicted = score is not None and score >= threshold
        if predicted and not label:
            report.false_positives.append(run.row.line)
        elif label and not predicted:
            report.false_negatives.append(run.row.line)
    return report


# -- spans ------------------------------------------------------------------------------


def spans_match(a_start: int, a_end: int, b_start: int, b_end: int, rule: MatchRule) -> bool:
    """``overlap``: at least one shared character; ``exact``: same boundaries."""
    if rule == "exact":
        return a_start == b_start and a_end == b_end
    return a_start < b_end and b_start < a_end


def type_map(overrides: Mapping[str, Sequence[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """:data:`DEFAULT_TYPE_MAP` with ``overrides`` replacing whole entries."""
    mapping = dict(DEFAULT_TYPE_MAP)
    for dataset_type, kinds in (overrides or {}).items():
        mapping[dataset_type] = tuple(kinds)
    return mapping


def accepted(mapping: Mapping[str, tuple[str, ...]], dataset_type: str) -> tuple[str, ...]:
    return mapping.get(dataset_type, (dataset_type,))


@dataclass(slots=True)
class SpanCounts:
    """``found`` of ``gold`` spans were matched; ``correct`` of ``predicted`` matched gold."""

    gold: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def recall(self) -> float | None:
        return ratio(self.found, self.gold)

    @property
    def precision(self) -> float | None:
        return ratio(self.correct, self.predicted)

    def f(self, beta: float) -> float | None:
        """F-beta of this precision and recall (recall and precision are counted on their
        own sides, so this is the harmonic form, not the counts form)."""
        p, r = self.precision, self.recall
        if p is None or r is None:
            return 0.0 if (p == 0 or r == 0) else None
        b2 = beta * beta
        return (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0

    def add(self, other: SpanCounts) -> None:
        self.gold += other.gold
        self.found += other.found
        self.predicted += other.predicted
        self.correct += other.correct

    def to_dict(self) -> dict[str, Any]:
        return {
            "gold": self.gold, "found": self.found, "predicted": self.predicted,
            "correct": self.correct, "recall": self.recall, "precision": self.precision,
            "f1": self.f(1.0), "f2": self.f(2.0),
        }


@dataclass(slots=True)
class SpanMiss:
    line: int
    start: int
    end: int
    type: str  # the gold type (missed) or the predicted kind (spurious)


@dataclass(slots=True)
class SpanReport:
    match: MatchRule
    threshold: float
    kinds: list[str] | None
    overall: SpanCounts
    per_type: dict[str, SpanCounts]
    structured: SpanCounts
    mapping: dict[str, tuple[str, ...]]
    structured_types: list[str]
    unmapped_kinds: dict[str, int]
    missed: list[SpanMiss] = field(default_factory=list)
    spurious: list[SpanMiss] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": self.match, "threshold": self.threshold, "kinds": self.kinds,
            **self.overall.to_dict(),
            "per_type": {
                t: {"kinds": list(accepted(self.mapping, t)), **c.to_dict()}
                for t, c in sorted(self.per_type.items())
            },
            "structured": {"types": self.structured_types, **self.structured.to_dict()},
            "unmapped_kinds": self.unmapped_kinds,
            "missed": [vars_of(m) for m in self.missed],
            "spurious": [vars_of(m) for m in self.spurious],
        }


def vars_of(miss: SpanMiss) -> dict[str, Any]:
    return {"line": miss.line, "start": miss.start, "end": miss.end, "type": miss.type}


def evaluate_spans(
    runs: Sequence[RowRun], threshold: float = 0.5, kinds: Iterable[str] | None = None,
    match: MatchRule = "overlap", mapping: Mapping[str, tuple[str, ...]] | None = None,
    structured_types: Iterable[str] = STRUCTURED_TYPES,
) -> SpanReport:
    chosen = frozenset(kinds) if kinds is not None else None
    types_map = dict(mapping) if mapping is not None else type_map()
    structured = frozenset(structured_types)
    overall, structured_counts = SpanCounts(), SpanCounts()
    per_type: dict[str, SpanCounts] = {}
    unmapped: Counter[str] = Counter()
    missed: list[SpanMiss] = []
    spurious: list[SpanMiss] = []
    dataset_types = {g.type for run in runs for g in run.row.entities}
    # the types a prediction's kind can stand for: those in this dataset, and structured
    # ones (a spurious IBAN counts against structured precision on a set without IBANs)
    candidates = dataset_types | (structured & set(types_map))
    mapped_kinds = {k for t in types_map for k in types_map[t]} | dataset_types

    for run in runs:
        gold = run.row.entities
        preds = {(f.start, f.end, f.kind) for f in counted(run.findings, threshold, chosen)
                 if f.end > f.start}
        boundaries = {(s, e) for s, e, _ in preds}
        # type-agnostic
        overall.gold += len(gold)
        for g in gold:
            if any(spans_match(g.start, g.end, s, e, match) for s, e in boundaries):
                overall.found += 1
            else:
                missed.append(SpanMiss(run.row.line, g.start, g.end, g.type))
        overall.predicted += len(boundaries)
        for s, e in sorted(boundaries):
            if any(spans_match(g.start, g.end, s, e, match) for g in gold):
                overall.correct += 1
            else:
                spurious.append(SpanMiss(run.row.line, s, e, _kinds_at(preds, s, e)))
        # per type, recall side
        for g in gold:
            counts = per_type.setdefault(g.type, SpanCounts())
            ok = accepted(types_map, g.type)
            hit = any(k in ok and spans_match(g.start, g.end, s, e, match) for s, e, k in preds)
            counts.gold += 1
            counts.found += hit
            if g.type in structured:
                structured_counts.gold += 1
                structured_counts.found += hit
        # per type, precision side: a prediction counts for every type accepting its kind
        for s, e, k in preds:
            right = any(k in accepted(types_map, g.type)
                        and spans_match(g.start, g.end, s, e, match) for g in gold)
            claimed = {t for t in candidates if k in accepted(types_map, t)}
            if k not in mapped_kinds:
                unmapped[k] += 1
            for t in claimed:
                counts = per_type.setdefault(t, SpanCounts())
                counts.predicted += 1
                counts.correct += right
            if any(k in accepted(types_map, t) for t in structured):
                structured_counts.predicted += 1
                structured_counts.correct += right

    shown = {t: c for t, c in per_type.items() if c.gold or c.predicted}
    return SpanReport(
        match=match, threshold=threshold, kinds=sorted(chosen) if chosen is not None else None,
        overall=overall, per_type=shown, structured=structured_counts, mapping=types_map,
        structured_types=sorted(structured), unmapped_kinds=dict(unmapped),
        missed=missed, spurious=spurious,
    )


def _kinds_at(preds: set[tuple[int, int, str]], start: int, end: int) -> str:
    return "|".join(sorted(k for s, e, k in preds if (s, e) == (start, end)))


# -- latency ----------------------------------------------------------------------------


def latency_report(runs: Sequence[RowRun]) -> LatencyReport:
    buckets: dict[str, list[float]] = {}
    for run in runs:
        buckets.setdefault(length_bucket(len(run.row.text)), []).append(run.seconds)
    by_bucket = {}
    for name, _ in LENGTH_BUCKETS:
        stats = LatencyStats.of(buckets.get(name, []))
        if stats is not None:
            by_bucket[name] = stats
    return LatencyReport(LatencyStats.of([r.seconds for r in runs]), by_bucket)


def time_lengths(detector: TimedDetector, rows: Sequence[Row], lengths: Sequence[int],
                 samples: int = 10, repeats: int = 5) -> dict[int, LatencyStats]:
    """Latency on inputs of exact lengths: per length, ``samples`` inputs are each scanned
    once untimed (warm-up) and then ``repeats`` times, timed."""
    texts = [r.text for r in rows]
    ctx = context_for(rows[0]) if rows else ScanContext()
    out: dict[int, LatencyStats] = {}
    for length in lengths:
        inputs = length_inputs(texts, length, samples)
        for text in inputs:
            detector(text, ctx)
        seconds = [detector(text, ctx)[1] for _ in range(repeats) for text in inputs]
        stats = LatencyStats.of(seconds)
        if stats is not None:
            out[length] = stats
    return out


# -- everything -------------------------------------------------------------------------


@dataclass(slots=True)
class Evaluation:
    dataset: str
    detector: str
    schema: Schema
    rows: int
    metrics: ClassificationReport | SpanReport
    latency: LatencyReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "detector": self.detector, "schema": self.schema,
            "rows": self.rows, "metrics": self.metrics.to_dict(),
            "latency": self.latency.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class EvalOptions:
    threshold: float = 0.5
    kinds: tuple[str, ...] | None = None
    strict: bool = False
    target_fpr: float | None = None
    sweep: tuple[float, ...] = ()
    mapping: Mapping[str, tuple[str, ...]] | None = None
    structured_types: frozenset[str] = STRUCTURED_TYPES
    lengths: tuple[int, ...] = ()
    samples: int = 10
    repeats: int = 5


def evaluate(detector: TimedDetector, schema: Schema, rows: Sequence[Row],
             options: EvalOptions = EvalOptions(), dataset: str = "",
             name: str = "") -> Evaluation:
    """Run every row through the detector and compute the schema's metrics and latency."""
    runs = run_rows(detector, rows)
    metrics: ClassificationReport | SpanReport
    if schema == "classification":
        metrics = evaluate_classification(runs, options.threshold, options.kinds,
                                          options.target_fpr, options.sweep)
    else:
        metrics = evaluate_spans(runs, options.threshold, options.kinds,
                                 "exact" if options.strict else "overlap",
                                 options.mapping, options.structured_types)
    latency = latency_report(runs)
    if options.lengths:
        latency.by_length = time_lengths(detector, rows, options.lengths, options.samples,
                                         options.repeats)
    return Evaluation(dataset, name, schema, len(rows), metrics, latency)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None
