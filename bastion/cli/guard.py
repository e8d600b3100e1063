"""``bastion guard``: what the guards do to a text (``scan``) and how well they do it on
labelled data (``eval``)."""

from __future__ import annotations

import json
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from bastion.evaluation import guards as evaluate
from bastion.evaluation.latency import LatencyReport, LatencyStats


@click.group()
def guard() -> None:
    """Guards: scan a text with a policy, evaluate scanners on labelled JSONL."""


def register(main: click.Group) -> None:
    main.add_command(guard)


# -- eval ---------------------------------------------------------------------------------


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values read as YAML scalars or lists (``3``, ``0.5``, ``true``,
    ``[en, de]``), anything else stays a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, not {pair!r}", param_hint="--option")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _type_map(pairs: tuple[str, ...]) -> dict[str, tuple[str, ...]] | None:
    if not pairs:
        return None
    overrides: dict[str, tuple[str, ...]] = {}
    for pair in pairs:
        dataset_type, sep, kinds = pair.partition("=")
        names = tuple(k.strip() for k in kinds.split(",") if k.strip())
        if not sep or not dataset_type.strip() or not names:
            raise click.BadParameter(f"expected TYPE=KIND[,KIND...], not {pair!r}",
                                     param_hint="--map")
        overrides[dataset_type.strip()] = names
    return evaluate.type_map(overrides)


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _lengths(value: str | None) -> tuple[int, ...]:
    try:
        lengths = tuple(int(v.replace("_", "")) for v in _csv(value) or ())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, not {value!r}",
                                 param_hint="--lengths") from None
    if any(n <= 0 for n in lengths):
        raise click.BadParameter("lengths must be positive", param_hint="--lengths")
    return lengths


def scanner_detector(name: str, options: dict[str, Any]) -> evaluate.Detector:
    """A registered scanner (built-in or a plugin's), built with ``options``."""
    from bastion.plugins import plugin_manager, scanner_factories

    factories = scanner_factories(plugin_manager())
    if name not in factories:
        known = ", ".join(sorted(factories)) or "none"
        raise click.ClickException(f"no scanner named {name!r} (registered: {known})")
    try:
        scanner = factories[name](options)
    except ValueError as exc:
        raise click.ClickException(f"scanner {name!r}: {exc}") from exc
    except (ImportError, AttributeError) as exc:  # a built-in whose module is not there yet
        raise click.ClickException(f"scanner {name!r} is not available: {exc}") from exc
    detector: evaluate.Detector = scanner.scan
    return detector


DEFAULT_SCANNER = {"spans": "pii", "classification": "injection"}


@guard.command("eval")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False))
@click.option("--scanner", "scanner_name", default=None,
              help="registered scanner (default: pii for span rows, injection for labels)")
@click.option("--option", "-o", "option_pairs", multiple=True, metavar="KEY=VALUE",
              help="scanner option, repeatable (values read as YAML: 0.5, true, [en, de])")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="a finding counts when its score is at least this")
@click.option("--kinds", default=None, metavar="K1,K2", help="count only these finding kinds")
@click.option("--strict", is_flag=True, help="spans match only with exact boundaries")
@click.option("--map", "map_pairs", multiple=True, metavar="TYPE=KIND[,KIND]",
              help="dataset type -> scanner kinds that stand for it, repeatable (replaces "
                   "the default entry)")
@click.option("--structured", default=None, metavar="T1,T2",
              help="dataset types pooled as 'structured' (default: emails, phones, cards, "
                   "IBANs, IPs, MACs, SSNs and national IDs)")
@click.option("--target-fpr", type=click.FloatRange(0, 1), default=None,
              help="also report the lowest threshold whose false-positive rate is at most this")
@click.option("--sweep", is_flag=True, help="metrics at thresholds 0.1 ... 0.9")
@click.option("--lengths", default=None, metavar="N1,N2",
              help="also time inputs of these exact lengths, built from the rows (they "
                   "repeat: turn scanner caches off to time cold, e.g. -o ner_cache=false)")
@click.option("--repeat", type=click.IntRange(1), default=5, show_default=True,
              help="timed repetitions per input in --lengths")
@click.option("--samples", type=click.IntRange(1), default=10, show_default=True,
              help="distinct inputs per length in --lengths")
@click.option("--schema", "schema_name", type=click.Choice(["classification", "spans"]),
              default=None,
              help="read rows in this schema (default: from the first row; spans when a "
                   "row has both label and entities)")
@click.option("--limit", type=click.IntRange(1), default=None, help="only the first N rows")
@click.option("--errors", type=click.IntRange(0), default=0, metavar="N",
              help="list up to N misses and false alarms (line numbers)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--policy", "policy_name", default=None,
              help="evaluate a policy's rules instead of one scanner (--stage; thresholds "
                   "are the policy's, so --threshold defaults to 0)")
@click.option("--stage", type=click.Choice(["input", "output"]), default="input",
              show_default=True, help="with --policy: which of its stages")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="with --policy: configuration file (default: $BASTION_CONFIG or "
                   "./bastion.yaml)")
@click.option("--actions", "action_names", default=None, metavar="A1,A2",
              help="with --policy: the rule actions that count as a detection (default: "
                   "block for label rows, redact,pseudonymize,block for span rows; add flag "
                   "to count what is only flagged)")
@click.option("--source-field", "source_field", default="source", show_default=True,
              metavar="NAME", help="the row field that says where its text sits (prompt, "
              "system, document, tool, completion); '' for none, when a dataset's source "
              "names where the row came from")
@click.option("--source", "fixed_source",
              type=click.Choice(["prompt", "system", "document", "tool", "completion"]),
              default=None, help="where every row's text sits (document/tool: indirect "
              "injection); overrides the rows' field")
def guard_eval(dataset: str, scanner_name: str | None, option_pairs: tuple[str, ...],
               threshold: float, kinds: str | None, strict: bool, map_pairs: tuple[str, ...],
               structured: str | None, target_fpr: float | None, sweep: bool,
               lengths: str | None, repeat: int, samples: int,
               schema_name: evaluate.Schema | None, limit: int | None, errors: int,
               as_json: bool, policy_name: str | None = None, stage: str = "input",
               config_path: str | None = None, action_names: str | None = None,
               source_field: str = "source", fixed_source: Any = None) -> None:
    """Precision, recall, F1/F2, balanced accuracy, false-positive rate and latency of a
    scanner on labelled JSONL: {"text", "label"} rows or {"text", "entities"} rows."""
    positions = evaluate.Positions(source_field or None, fixed_source)
    try:
        schema, rows = evaluate.load_dataset(dataset, limit, schema_name, positions)
    except evaluate.DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    if policy_name is not None:
        _, engine, _ = _engine(config_path)
        policy = _policy(engine, policy_name)
        actions = _actions(action_names, schema)
        name = f"policy {policy.name} ({stage}; counted: {', '.join(actions)})"
        detector = policy_detector(engine, policy, stage, actions)
        if click.get_current_context().get_parameter_source("threshold") is not (
                click.core.ParameterSource.COMMANDLINE):
            threshold = 0.0
    else:
        if action_names is not None:
            raise click.UsageError("--actions needs --policy (a scanner has no actions)")
        name = scanner_name or DEFAULT_SCANNER[schema]
        detector = scanner_detector(name, _options(option_pairs))
    structured_types = _csv(structured)
    options = evaluate.EvalOptions(
        threshold=threshold, kinds=_csv(kinds), strict=strict, target_fpr=target_fpr,
        sweep=evaluate.DEFAULT_SWEEP if sweep else (), mapping=_type_map(map_pairs),
        structured_types=(frozenset(structured_types) if structured_types is not None
                          else evaluate.STRUCTURED_TYPES),
        lengths=_lengths(lengths), samples=samples, repeats=repeat,
    )
    run_eval(evaluate.timed(detector), name, dataset, schema, rows, options, as_json, errors)


def run_eval(detector: evaluate.TimedDetector, name: str, dataset: str,
             schema: evaluate.Schema, rows: list[evaluate.Row], options: evaluate.EvalOptions,
             as_json: bool, errors: int = 0) -> None:
    """Evaluate and print: what ``eval`` does once it knows what to run (a scanner, or a
    policy's pipeline wrapped as a detector)."""
    try:
        result = evaluate.evaluate(detector, schema, rows, options, dataset=dataset, name=name)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        out = result.to_dict()
        _trim_errors(out["metrics"], errors)
        click.echo(json.dumps(out, indent=2))
        return
    console = Console()
    console.print(f"[bold]{name}[/] on {dataset}: {result.rows} rows ({schema})")
    if isinstance(result.metrics, evaluate.ClassificationReport):
        console.print(_classification_table(result.metrics))
        if errors:
            m = result.metrics
            console.print(f"false positives (lines): {_lines(m.false_positives, errors)}")
            console.print(f"false negatives (lines): {_lines(m.false_negatives, errors)}")
    else:
        for table in _span_tables(result.metrics):
            console.print(table)
        if errors:
            console.print(_misses_table(result.metrics, rows, errors))
    console.print(_latency_table(result.latency))


def _trim_errors(metrics: dict[str, Any], limit: int) -> None:
    for key in ("false_positive_lines", "false_negative_lines", "missed", "spurious"):
        if key in metrics:
            metrics[key] = metrics[key][:limit]


def _lines(lines: list[int], limit: int) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    more = len(lines) - limit
    return (shown or "none") + (f" (+{more} more)" if more > 0 else "")


def _f(value: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def _classification_table(m: evaluate.ClassificationReport) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    table.add_column("threshold", no_wrap=True)
    for col in ("n", "pos", "tp", "fp", "fn", "precision", "recall", "F1", "F2",
                "bal. acc", "FPR", "accuracy"):
        table.add_column(col, justify="right", no_wrap=True)

    def row(label: str, c: evaluate.Confusion) -> None:
        table.add_row(label, str(c.n), str(c.positives), str(c.tp), str(c.fp), str(c.fn),
                      _f(c.precision), _f(c.recall), _f(c.f1), _f(c.f2),
                      _f(c.balanced_accuracy), _f(c.fpr), _f(c.accuracy))

    row(f"{m.threshold:g}", m.confusion)
    for t, c in m.sweep:
        row(f"[dim]{t:g}[/]", c)
    if m.target_confusion is not None and m.target_threshold is not None:
        label = ("never" if m.target_threshold == float("inf")
                 else f"{m.target_threshold:.4g}")
        row(f"[cyan]{label}[/] (FPR<={m.target_fpr:g})", m.target_confusion)
    table.caption = f"ROC AUC (max score per row): {_f(m.auc)}"
    return table


def _span_tables(m: evaluate.SpanReport) -> list[Table]:
    rule = "exact boundaries" if m.match == "exact" else "overlap (>= 1 shared character)"
    overall = Table(title=f"spans, type-agnostic, {rule}", header_style="bold",
                    pad_edge=False)
    for col in ("gold", "found", "predicted", "correct", "recall", "precision", "F1", "F2"):
        overall.add_column(col, justify="right", no_wrap=True)
    o = m.overall
    overall.add_row(str(o.gold), str(o.found), str(o.predicted), str(o.correct),
                    _f(o.recall), _f(o.precision), _f(o.f(1.0)), _f(o.f(2.0)))

    per_type = Table(title="per type", header_style="bold", pad_edge=False)
    per_type.add_column("type", no_wrap=True)
    per_type.add_column("kinds", no_wrap=True)
    for col in ("gold", "recall", "predicted", "precision"):
        per_type.add_column(col, justify="right", no_wrap=True)
    for t, c in sorted(m.per_type.items(), key=lambda kv: (-kv[1].gold, kv[0])):
        style = "bold" if t in m.structured_types else ""
        per_type.add_row(f"[{style}]{t}[/]" if style else t,
                         ",".join(evaluate.accepted(m.mapping, t)), str(c.gold),
                         _f(c.recall), str(c.predicted), _f(c.precision))
    s = m.structured
    if s.gold or s.predicted:
        per_type.add_row("[cyan]structured[/]", "", str(s.gold), _f(s.recall),
                         str(s.predicted), _f(s.precision))
    if m.unmapped_kinds:
        per_type.caption = "kinds no type maps to: " + ", ".join(
            f"{k} ({n})" for k, n in sorted(m.unmapped_kinds.items()))
    return [overall, per_type]


def _misses_table(m: evaluate.SpanReport, rows: list[evaluate.Row], limit: int) -> Table:
    texts = {r.line: r.text for r in rows}
    table = Table(title="misses and false alarms", header_style="bold", pad_edge=False)
    for col in ("what", "line", "type/kind"):
        table.add_column(col, no_wrap=True)
    table.add_column("text", overflow="ellipsis", no_wrap=True, ratio=1)
    for what, misses in (("missed", m.missed), ("spurious", m.spurious)):
        for miss in misses[:limit]:
            excerpt = texts.get(miss.line, "")[miss.start:miss.end].replace("\n", " ")
            table.add_row(what, str(miss.line), miss.type, repr(excerpt))
    return table


def _latency_table(lat: LatencyReport) -> Table:
    table = Table(title="latency (ms)", header_style="bold", pad_edge=False)
    table.add_column("input", no_wrap=True)
    for col in ("n", "mean", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="right", no_wrap=True)

    def row(label: str, s: LatencyStats) -> None:
        table.add_row(label, str(s.n), *(_ms(v) for v in (s.mean_ms, s.p50_ms, s.p95_ms,
                                                          s.p99_ms, s.max_ms)))

    if lat.overall is not None:
        row("all rows", lat.overall)
    for name, stats in lat.by_bucket.items():
        row(f"rows {name} chars", stats)
    for length, stats in lat.by_length.items():
        row(f"{length} chars", stats)
    return table


# ---------------------------------------------------------------------- policies
def _engine(config_path: str | None) -> Any:
    """The guard engine of a configuration (its policies, plus the built-in 'standard'),
    with the settings and the path they came from."""
    from pathlib import Path

    from bastion.config import config_path as default_config_path
    from bastion.config import load_settings
    from bastion.errors import ConfigError
    from bastion.guards.engine import GuardEngine
    from bastion.plugins import plugin_manager, scanner_factories

    path = Path(config_path) if config_path else default_config_path()
    try:
        settings = load_settings(path)
        engine = GuardEngine(settings.guards, scanner_factories(plugin_manager()))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings, engine, path


def _policy(engine: Any, name: str) -> Any:
    from bastion.errors import ConfigError

    try:
        return engine.policy(name)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _server_policy(engine: Any, settings: Any, path: Any, name: str | None) -> tuple[Any, str]:
    """The policy a scan uses and where that choice came from: ``--policy``, else the one
    the server applies to a request nothing attaches a policy to (``guards.default``),
    else none, as the server then runs no guards."""
    where = f"in {path}" if path is not None and path.is_file() else "(no config file)"
    if name:
        return _policy(engine, name), "--policy"
    if settings.guards.default:
        return _policy(engine, settings.guards.default), f"guards.default {where}"
    return None, (f"guards.default is not set {where}, so the server runs no guards "
                  "(try --policy standard)")


ACTIONS = ("block", "redact", "pseudonymize", "flag", "log")
DEFAULT_ACTIONS = {"classification": ("block",), "spans": ("redact", "pseudonymize", "block")}


def _actions(value: str | None, schema: evaluate.Schema) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_ACTIONS[schema]
    actions = tuple(dict.fromkeys(_csv(value) or ()))
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown or not actions:
        raise click.BadParameter(f"expected some of {', '.join(ACTIONS)}, not {value!r}",
                                 param_hint="--actions")
    return actions


def policy_detector(engine: Any, policy: Any, stage: str,
                    actions: tuple[str, ...] = ("block",)) -> evaluate.Detector:
    """What a policy's rules of one stage whose action is one of ``actions`` find in a text,
    each rule on the text as given (no actions applied), with the rule's threshold and
    kinds: a policy as a detector. A label row counts as detected when a blocking rule (by
    default) fires, as it would be at the gateway; a rule that only pseudonymizes changes
    the text, it does not stop it."""
    from bastion.guards.base import Finding

    rules = [r for r in (policy.input if stage == "input" else policy.output)
             if r.spec.action in actions]

    def detect(text: str, ctx: Any) -> list[Finding]:
        return [f for rule in rules for f in rule.findings(text, ctx)]

    return detect


@guard.command("scan")
@click.argument("text")
@click.option("--policy", "policy_name", default=None,
              help="policy name (default: the server's, guards.default; when that is unset "
                   "the server runs no guards and neither does the scan)")
@click.option("--stage", type=click.Choice(["input", "output"]), default="input",
              show_default=True, help="scan as a request (input) or as an answer (output)")
@click.option("--source", type=click.Choice(["prompt", "system", "document", "tool"]),
              default="prompt", show_default=True,
              help="input: what the text is (document/tool: indirect injection)")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="configuration file (default: $BASTION_CONFIG or ./bastion.yaml)")
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON")
def guard_scan(text: str, policy_name: str | None, stage: str, source: str,
               config_path: str | None, as_json: bool) -> None:
    """What a policy would do to TEXT (a string, a file path, or - for stdin): each
    decision, and the text as it would go on. Without --policy, the server's default
    policy (the one a request with no key, team or model policy gets), named in the
    output. Exit status 1 when the policy blocks, 3 when a scanner failed on a rule that
    fails closed (the server would answer 503 guard_error)."""
    import sys
    from pathlib import Path

    if text == "-":
        text = sys.stdin.read()
    elif len(text) < 4096 and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8", errors="replace")
    settings, engine, path = _engine(config_path)
    policy, chosen_by = _server_policy(engine, settings, path, policy_name)
    if policy is None:
        _report_unguarded(text, stage, chosen_by, as_json)
        return
    scanned = engine.scan(policy, stage, text, source="completion" if stage == "output"
                          else source, where="text", session="cli")
    originals = engine.vault.originals("cli")
    failed = scanned.blocked if scanned.blocked is not None and scanned.blocked.error else None
    if as_json:
        click.echo(json.dumps({
            "policy": policy.name, "policy_from": chosen_by, "stage": stage,
            "blocked": scanned.blocked is not None,
            "failed": failed.scanner if failed is not None else None,
            "decisions": [d.as_dict() for d in scanned.decisions], "text": scanned.text,
            "pseudonyms": sorted(originals),
        }, indent=2))
    else:
        console = Console()
        heading = f"policy {policy.name!r} ({chosen_by}), {stage}"
        table = Table(title=heading)
        for column in ("scanner", "action", "kinds", "score", "count", "ms"):
            table.add_column(column, justify="right" if column in ("score", "count", "ms")
                             else "left")
        for d in scanned.decisions:
            table.add_row(d.scanner, d.action, ", ".join(d.kinds), f"{d.score:.3f}",
                          str(d.count), f"{d.ms:.2f}")
        console.print(table if scanned.decisions else f"{heading}: nothing found",
                      markup=False, highlight=False)
        if failed is not None:
            console.print(f"[bold red]not checked[/]: the {failed.scanner} scanner failed "
                          f"({failed.error}) and its rule fails closed; the server would "
                          "answer 503 guard_error")
        elif scanned.blocked is not None:
            console.print(f"[bold red]blocked[/] by {scanned.blocked.scanner} "
                          f"({', '.join(scanned.blocked.kinds)})")
        else:
            console.print(scanned.text, markup=False, highlight=False)
    if scanned.blocked is not None:
        sys.exit(3 if failed is not None else 1)


def _report_unguarded(text: str, stage: str, why: str, as_json: bool) -> None:
    """A scan without a policy: what the server would do, which is to pass TEXT on."""
    if as_json:
        click.echo(json.dumps({"policy": None, "policy_from": why, "stage": stage,
                               "blocked": False, "decisions": [], "text": text,
                               "pseudonyms": []}, indent=2))
        return
    console = Console()
    console.print(f"no policy: {why}", markup=False, highlight=False)
    console.print(text, markup=False, highlight=False)
