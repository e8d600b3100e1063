"""Configuration: one YAML file plus ``BASTION_*`` environment overrides, validated once.

Sources, later ones winning:

1. built-in defaults (no file at all: the embedded SmolLM2 model and the local embedder);
2. the YAML file (``--config``, else ``$BASTION_CONFIG``, else ``./bastion.yaml`` if present),
   where ``${VAR}`` and ``${VAR:-default}`` are replaced from the environment;
3. environment overrides: ``BASTION_HOST``, ``BASTION_PORT``, ``BASTION_MASTER_KEY``,
   ``BASTION_HOME`` and, for any other key, ``BASTION_<SECTION>__<KEY>`` (for example
   ``BASTION_SERVER__MAX_BODY_BYTES=1048576``); values are parsed as YAML scalars.

This is the only module that reads the environment. Errors name the offending key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from bastion.config_access import (
    AuthSettings,
    BudgetSettings,
    LimitSettings,
    TlsSettings,
    UiSettings,
)
from bastion.errors import ConfigError
from bastion.secret_values import (
    MIN_SECRET_LENGTH,
    credential_headers,
    strong_encryption_key,
    strong_key,
    vault_key_bytes,
)

ENV_PREFIX = "BASTION_"
_ALIASES = {
    "BASTION_HOST": ("server", "host"),
    "BASTION_PORT": ("server", "port"),
    "BASTION_MASTER_KEY": ("server", "master_key"),
    "BASTION_HOME": ("home",),
    "BASTION_ENCRYPTION_KEY": ("store", "encryption_key"),
}
_NOT_OVERRIDES = {"BASTION_CONFIG"}
_INTERPOLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    host: str = Field("127.0.0.1", description="bind address; beyond loopback needs master_key")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port)")
    master_key: Annotated[SecretStr | None, AfterValidator(strong_key)] = Field(
        None, description="when set, /v1/*, /api/* and /metrics require `Authorization: "
        f"Bearer <key>`; at least {MIN_SECRET_LENGTH} characters, not a placeholder (an empty "
        "or weak key is refused, never a way in)",
    )
    max_body_bytes: int = Field(8 << 20, ge=1024, description="413 above this request size")
    keepalive_timeout: float = Field(75.0, gt=0, description="idle keep-alive connections close")
    header_timeout: float = Field(
        60.0, gt=0, description="seconds a client may take to send a request line and headers "
        "(from its first byte; also the wait for a new connection's first byte), like nginx's "
        "client_header_timeout; a partial request then gets 408 and the connection closes",
    )
    body_timeout: float = Field(
        60.0, gt=0, description="seconds a client may take to send a whole request body (from "
        "the end of its headers; a total, not a gap between reads, so a trickling client is "
        "bounded too), like nginx's client_body_timeout; then 408 and the connection closes",
    )
    write_timeout: float = Field(
        60.0, gt=0, description="seconds a response may wait on a client that reads none of "
        "it (its buffer full), like nginx's send_timeout: a gap between writes, not the whole "
        "transfer; then the connection is aborted and a stream's backend call cancelled",
    )
    graceful_timeout: float = Field(
        30.0, ge=0, description="on SIGTERM, seconds in-flight requests and streams may finish"
    )
    workers: int = Field(
        1, ge=1, le=64, description="worker processes sharing the port (each loads its models)"
    )
    drain_linger: float = Field(
        1.0, ge=0, description="on SIGTERM, seconds an idle keep-alive connection stays open "
        "to answer a request already on its way (with Connection: close)",
    )
    ready_timeout: float = Field(
        120.0, gt=0, description="rolling restart: seconds a new worker may take to load its "
        "models before the roll is aborted",
    )
    access_log: bool = Field(False, description="log one line per request to stderr")
    log_format: Literal["json", "text"] = Field(
        "json", description="stderr logs: one JSON object a line (with request ids), or text; "
        "secrets and keys are redacted either way",
    )
    tls: TlsSettings | None = Field(None, description="HTTPS on this port (off when unset)")


class Pricing(_Strict):
    """What a deployment costs, in USD: per 1M tokens, or per hour of a local machine."""

    input: float = Field(0.0, ge=0, description="per 1M input (prompt) tokens")
    output: float = Field(0.0, ge=0, description="per 1M output (completion) tokens")
    cached: float | None = Field(
        None, ge=0, description="per 1M cached input tokens (default: the input price)"
    )
    per_hour: float = Field(
        0.0, ge=0, description="a local model's machine cost per hour, charged by latency"
    )


class _Deployment(BaseModel):
    """Routing fields every model (deployment) has."""

    alias: str | None = Field(
        None, min_length=1,
        description="public model name this deployment serves (default: its name); "
        "deployments sharing an alias are load-balanced",
    )
    weight: float = Field(1.0, gt=0, description="share of traffic (weighted, least_in_flight)")
    priority: int = Field(
        1, ge=0, description="priority group: lower groups are used first, higher ones only "
        "when no deployment of a lower group is available",
    )
    max_concurrency: int | None = Field(
        None, ge=1, description="requests in flight at most; beyond it the router looks elsewhere"
    )
    price: float = Field(0.0, ge=0, description="price per 1M tokens, for cost-aware routing")
    pricing: Pricing | None = Field(
        None, description="cost of each request, stored on its trace (default: `price` for "
        "input and output tokens)",
    )
    timeout: float | None = Field(
        None, gt=0, description="seconds for a whole non-streamed call (504, then failover)"
    )
    first_token_timeout: float | None = Field(
        None, gt=0, description="seconds until a stream's first event (504, then failover)"
    )

    @property
    def public_name(self) -> str:
        return self.alias or self.name  # type: ignore[attr-defined]


class EmbeddedModel(_Deployment, _Strict):
    """A GGUF model run in-process by llama.cpp."""

    name: str = Field(min_length=1, description="the model name clients ask for")
    backend: Literal["llama_cpp"]
    path: str | None = Field(None, description="GGUF file; default: the packaged SmolLM2")
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$",
        description="checked before loading (the packaged model is always checked)",
    )
    n_ctx: int = Field(2048, ge=128, description="context window in tokens")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores")
    n_batch: int = Field(512, ge=8, description="prompt-processing batch size")
    queue_size: int = Field(
        32, ge=0, description="requests that may wait for the model before 503 + Retry-After"
    )
    max_tokens_default: int | None = Field(
        None, ge=1, description="max_tokens when the request gives none (default: to n_ctx)"
    )
    chat_format: str | None = Field(
        None, description="llama-cpp-python chat format; default: the GGUF's own template"
    )
    logprobs: bool = Field(
        False, description="keep logits for every token (n_ctx x vocab floats): legacy "
        "completions' logprobs need it on the serial path (chat computes its own)"
    )
    parallel: int = Field(
        1,
        ge=1,
        le=64,
        description="sequences decoded together by the batched engine (1: serial path); "
        "see docs/llama-batching.md",
    )


class UpstreamModel(_Deployment, _Strict):
    """Any OpenAI-compatible server: vLLM, TGI, Ollama, llama.cpp server, OpenAI, Groq..."""

    name: str = Field(min_length=1, description="the model name clients ask for")
    backend: Literal["openai"]
    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000/v1")
    upstream_model: str | None = Field(None, description="model name upstream; default: name")
    api_key_env: str | None = Field(None, description="environment variable holding the key")
    connect_timeout: float = Field(5.0, gt=0, description="seconds to connect (and TLS)")
    read_timeout: float = Field(
        600.0, gt=0, description="seconds without a byte from the upstream before 504"
    )
    max_connections: int = Field(256, ge=1, description="pooled connections to this upstream")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra headers sent upstream"
    )

    @field_validator("headers")
    @classmethod
    def _credentials(cls, value: dict[str, str]) -> dict[str, str]:
        return credential_headers(value, "headers:")


class LocalEmbeddingModel(_Deployment, _Strict):
    """A local sentence-embedding model for /v1/embeddings (no torch)."""

    name: str = Field(min_length=1, description="the model name clients ask for")
    backend: Literal["local_embedding"]
    path: str | None = Field(
        None, description="ONNX or GGUF file; default: the packaged all-MiniLM-L6-v2"
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="checked before loading"
    )
    queue_size: int = Field(
        64, ge=0, description="requests that may wait before 503 + Retry-After"
    )


class PluginModel(_Deployment):
    """A model served by a backend kind that a plugin registers (``register_backends``).

    Its other keys are the plugin's own; the plugin's factory receives this object."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, description="the model name clients ask for")
    backend: str = Field(min_length=1, description="the kind a plugin registered")


BUILTIN_KINDS = ("llama_cpp", "openai", "local_embedding")


def _backend_tag(value: Any) -> str:
    kind = value.get("backend") if isinstance(value, dict) else getattr(value, "backend", None)
    return kind if kind in BUILTIN_KINDS else "plugin"


ModelSpec = Annotated[
    Annotated[EmbeddedModel, Tag("llama_cpp")]
    | Annotated[UpstreamModel, Tag("openai")]
    | Annotated[LocalEmbeddingModel, Tag("local_embedding")]
    | Annotated[PluginModel, Tag("plugin")],
    Discriminator(_backend_tag),
]


class RouteSettings(_Strict):
    strategy: str = Field(
        "least_in_flight",
        description="round_robin, weighted, least_in_flight, latency, cost, or a plugin's",
    )
    retries: int = Field(
        2, ge=0, le=10, description="extra attempts after a retryable failure (5xx, 429, timeout)"
    )
    fallbacks: list[str] = Field(
        default_factory=list, description="aliases tried, in order, when this one fails"
    )
    backoff: float = Field(
        0.05, ge=0, description="base of the jittered exponential backoff, seconds"
    )
    max_backoff: float = Field(
        2.0, ge=0, description="longest wait before a retry; a longer Retry-After is not waited"
    )
    queue_wait: float = Field(
        1.0, ge=0, le=60,
        description="seconds a request waits for a deployment when all are cooling down or at "
        "capacity, before 503 + Retry-After",
    )
    affinity: str | None = Field(
        None,
        description="session affinity: 'user' (the request's user field) or a header name; "
        "the same key goes to the same deployment while it is available",
    )
    queue_size: int = Field(
        256, ge=0,
        description="requests that may wait for this alias's deployments (by priority, "
        "tenants sharing fairly); beyond it 503 + Retry-After",
    )


class RoutingSettings(_Strict):
    default: RouteSettings = Field(
        default_factory=RouteSettings, description="for aliases not listed"
    )
    aliases: dict[str, RouteSettings] = Field(
        default_factory=dict, description="per public model name"
    )
    failure_threshold: int = Field(
        5, ge=1, description="consecutive failures that open a deployment's circuit breaker"
    )
    cooldown: float = Field(
        10.0, gt=0, description="seconds an open breaker waits before a half-open probe"
    )
    probe_interval: float = Field(
        15.0, ge=0, description="seconds between active health probes (GET /models); 0: off"
    )

    def route(self, alias: str) -> RouteSettings:
        return self.aliases.get(alias, self.default)


class TenantSettings(_Strict):
    priority: int | None = Field(
        None, ge=0, le=9, description="priority of this tenant's requests (0 most urgent)"
    )
    best_priority: int | None = Field(
        None, ge=0, le=9, description="the most urgent priority its requests may ask for"
    )
    weight: float = Field(
        1.0, gt=0, description="its share of a busy model against other tenants'"
    )
    max_queued: int | None = Field(
        None, ge=0, description="its requests waiting at most; beyond it 429 + Retry-After"
    )


class AdmissionSettings(_Strict):
    """Who waits first when a model is busy: priority, then fair shares between tenants."""

    priority_header: str | None = Field(
        "x-bastion-priority",
        description="header by which a request asks for a priority, 0 (most urgent) to 9; "
        "null: ignored",
    )
    tenant_header: str | None = Field(
        "x-bastion-tenant",
        description="header naming the tenant a request counts against for fair sharing "
        "(an API key's team, once keys carry one, takes precedence)",
    )
    default_priority: int = Field(5, ge=0, le=9, description="priority when none is asked for")
    best_priority: int = Field(
        0, ge=0, le=9, description="the most urgent priority a request may ask for"
    )
    max_queued_per_tenant: int | None = Field(
        None, ge=0, description="a tenant's requests waiting at most (429 beyond); null: no cap"
    )
    tenants: dict[str, TenantSettings] = Field(
        default_factory=dict, description="per-tenant priority, weight and queue cap"
    )


class StoreSettings(_Strict):
    """Where traces, feedback and (later) keys and registries live."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL: postgresql+psycopg://user@host/db, or sqlite:///path; "
        "default: SQLite (WAL) at <home>/bastion.db",
    )
    pool_size: int = Field(5, ge=1, description="connections per worker process (Postgres)")
    partition_days: int = Field(
        1, ge=1, le=31, description="Postgres: days per trace partition (created ahead)"
    )
    encryption_key: Annotated[SecretStr | None, AfterValidator(strong_encryption_key)] = (
        Field(None, description="the deployment secret: the spool's and the trace bodies' "
              "AES-256-GCM keys are derived from it (HKDF; the bodies' data keys are kept "
              "wrapped under it and rotate with `bastion keys rotate-data-key`), "
              f"e.g. ${{BASTION_ENCRYPTION_KEY}}; at least {MIN_SECRET_LENGTH} "
              "characters (an empty or weak one is refused); default: a random key "
              "generated once into <home>/encryption.key (mode 0600)")
    )
    encrypt_bodies: bool = Field(
        True, description="store trace bodies (input, output, spans, previews) encrypted "
        "(AES-256-GCM) and text search over a blind index of hashed words (whole words "
        "only: no prefix or phrase search); false: plaintext bodies, word-prefix search",
    )


class TracingSettings(_Strict):
    """One trace per request, written off the request path."""

    enabled: bool = Field(True, description="record a trace for every /v1/* request")
    content: Literal["full", "redacted", "metadata"] = Field(
        "redacted",
        description="what of the bodies is stored: full, redacted (after the guards' PII "
        "redaction) or metadata (no bodies)",
    )
    content_by_tenant: dict[str, Literal["full", "redacted", "metadata"]] = Field(
        default_factory=dict,
        description="content mode per team or tenant (an API key's team, else the "
        "admission tenant), overriding `content`",
    )
    redact_ner: bool = Field(
        True, description="in `redacted` mode, also run the PII scanner's NER model (names, "
        "places, organisations) over stored bodies, at ingest (off the request path; about "
        "13 ms of ingest CPU per 1,000 characters); false: the secrets and PII pattern tiers "
        "and cue-based names only (about 1.5 ms)",
    )
    batch_size: int = Field(500, ge=1, description="traces written per store transaction")
    flush_interval: float = Field(
        0.2, gt=0, le=10, description="seconds between writes of the spool files"
    )
    spool_dir: str | None = Field(
        None, description="spool files (also the journal while the store is down); "
        "default: <home>/spool",
    )
    max_body_chars: int = Field(
        32_768, ge=0, description="input/output text kept per trace (longer is truncated)"
    )
    retention_days: float | None = Field(
        None, gt=0, description="traces older than this are deleted (Postgres: whole "
        "partitions dropped), checked hourly; null: kept",
    )
    retention_by_team: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="days a team's traces are kept, when shorter than `retention_days` "
        "(row deletes, also on Postgres), checked hourly; a TTL longer than "
        "`retention_days` is refused (the global one deletes them anyway)",
    )

    @model_validator(mode="after")
    def _team_retention(self) -> TracingSettings:
        cap = self.retention_days
        longer = [t for t, d in self.retention_by_team.items() if cap is not None and d > cap]
        if longer:
            raise ValueError(f"tracing.retention_by_team.{longer[0]}: longer than "
                             "retention_days, which deletes those traces anyway")
        return self
    drain_timeout: float = Field(
        120.0, ge=0, description="at shutdown, seconds the ingest may take to store what is "
        "spooled (what is left is stored at the next start)",
    )
    ingest_nice: int = Field(
        19, ge=0, le=19, description="CPU niceness of the ingest process: on a saturated "
        "machine serving requests comes first and the spool is stored when there is room "
        "(the spool files wait on disk meanwhile)",
    )
    ingest_idle: bool = Field(
        True, description="run the ingest process under Linux's SCHED_IDLE: it takes only "
        "CPU time nothing else wants (a saturated gateway lost 3-4 % of its throughput to it "
        "at nice 19, under 1 % this way); normal priority once it falls behind "
        "(`ingest_max_lag`) and to drain at shutdown",
    )
    ingest_max_lag: float = Field(
        30.0, gt=0, description="with `ingest_idle`: seconds the oldest waiting spool file "
        "may age before the ingest leaves SCHED_IDLE to catch up (it returns below half)",
    )
    ingest_cpus: list[int] | None = Field(
        None, description="CPUs the ingest process (which builds and stores the traces) may "
        "run on; default: the gateway's own",
    )
    spool_memory_mb: float = Field(
        256.0, gt=0, description="traces held in memory at most while the spool files "
        "cannot be written (disk full or gone); beyond it new traces are dropped, counted "
        "in `bastion_traces_dropped_total` and logged, so the gateway keeps serving",
    )


class MetricsSettings(_Strict):
    enabled: bool = Field(True, description="serve Prometheus metrics at /metrics")
    auth: bool = Field(
        True, description="/metrics requires the master key when one is set (Prometheus: "
        "`authorization: {credentials: <key>}`); false opens it to anyone who can reach it",
    )
    dir: str | None = Field(
        None, description="where worker processes share their metrics; default: <home>/metrics"
    )


class OtelSettings(_Strict):
    """OpenTelemetry export (OTLP over HTTP), GenAI semantic conventions."""

    enabled: bool = Field(False, description="export traces and metrics over OTLP")
    endpoint: str = Field(
        "http://127.0.0.1:4318", description="OTLP/HTTP collector base URL (/v1/traces ...)"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="sent to the collector")

    @field_validator("headers")
    @classmethod
    def _credentials(cls, value: dict[str, str]) -> dict[str, str]:
        return credential_headers(value, "otel.headers:")
    service_name: str = Field("bastion", description="service.name resource attribute")
    capture_content: bool = Field(
        False, description="add prompts and completions as span events (if tracing.content "
        "allows)",
    )
    export_interval: float = Field(10.0, gt=0, description="seconds between metric exports")


GuardAction = Literal["block", "redact", "pseudonymize", "flag", "log"]


class GuardRule(_Strict):
    """One scanner in a policy: what it looks for, from which score on, and what then."""

    scanner: str = Field(min_length=1, description="a registered scanner (pii, secrets...)")
    action: GuardAction = Field(
        "flag", description="block (400), redact ([KIND]), pseudonymize (<KIND_1>, restored "
        "in the answer), flag (allow, record) or log"
    )
    threshold: float = Field(0.5, ge=0, le=1, description="findings scoring below are ignored")
    kinds: list[str] | None = Field(
        None, description="only these kinds of finding (e.g. [EMAIL_ADDRESS, PERSON])"
    )
    sources: list[Literal["prompt", "system", "document", "tool", "completion"]] | None = Field(
        None, description="input only: which message sources (user/system prompts, tool "
        "output, documents); default all"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="the scanner's options")
    reask: bool = Field(
        False, description="json_schema on output: on a violation, ask the model once more"
    )
    on_error: Literal["closed", "open"] | None = Field(
        None, description="when the scanner itself fails: closed (the request gets a 503 "
        "guard_error; an answer is withheld) or open (the text goes on, flagged "
        "SCANNER_ERROR); default closed for block/redact/pseudonymize, open for flag/log"
    )


class GuardPolicy(_Strict):
    input: list[GuardRule] = Field(default_factory=list, description="scanners on the request")
    output: list[GuardRule] = Field(default_factory=list, description="scanners on the answer")


class GuardAttach(_Strict):
    """Which policy applies to a request: the most specific attachment wins (key, then team,
    tenant, model alias, route), else ``guards.default``."""

    keys: dict[str, str] = Field(default_factory=dict, description="API key id -> policy")
    teams: dict[str, str] = Field(default_factory=dict, description="team -> policy")
    tenants: dict[str, str] = Field(default_factory=dict, description="tenant -> policy")
    models: dict[str, str] = Field(default_factory=dict, description="model alias -> policy")
    routes: dict[str, str] = Field(
        default_factory=dict, description="path (e.g. /v1/embeddings) -> policy"
    )


class GuardSettings(_Strict):
    default: str | None = Field(
        None, description="policy for requests nothing else attaches one to (none: no guards)"
    )
    policies: dict[str, GuardPolicy] = Field(
        default_factory=dict, description="named policies; 'standard' is built in"
    )
    attach: GuardAttach = Field(default_factory=GuardAttach)
    vault_ttl: float = Field(
        3600.0, gt=0, description="seconds a session's pseudonyms (and originals) are kept"
    )
    vault_key: SecretStr | None = Field(
        None, description="base64 of a 32-byte AES-256-GCM key for the vault, e.g. "
        "${BASTION_VAULT_KEY} (default: a random key per process)"
    )

    @field_validator("vault_key")
    @classmethod
    def _vault_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            vault_key_bytes(value.get_secret_value())
        return value
    refusal: str = Field(
        "I can't help with that.", description="the answer's text when an output is blocked"
    )

    @model_validator(mode="after")
    def _check(self) -> GuardSettings:
        known = set(self.policies) | {"standard", "none"}
        attached = [("guards.default", self.default)] if self.default else []
        for group in ("keys", "teams", "tenants", "models", "routes"):
            for name, policy in getattr(self.attach, group).items():
                attached.append((f"guards.attach.{group}.{name}", policy))
        for where, policy in attached:
            if policy not in known:
                raise ValueError(f"{where}: unknown policy {policy!r} (known: {sorted(known)})")
        for name, policy in self.policies.items():
            for i, rule in enumerate(policy.output):
                if rule.action == "pseudonymize":
                    raise ValueError(f"guards.policies.{name}.output[{i}]: pseudonymize is "
                                     "for input (the answer's placeholders are restored)")
                if rule.sources is not None:
                    raise ValueError(f"guards.policies.{name}.output[{i}].sources: input only")
        return self


def _default_models() -> list[ModelSpec]:
    return [
        EmbeddedModel(name="smollm2", backend="llama_cpp"),
        LocalEmbeddingModel(name="minilm", backend="local_embedding"),
    ]


class Settings(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: list[ModelSpec] = Field(default_factory=_default_models)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    home: str = Field(".bastion", description="data directory")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {', '.join(dupes)}")
        aliases = {m.public_name for m in self.models}
        clash = sorted(aliases & (set(names) - aliases))
        if clash:
            raise ValueError(f"names used both as a model name and another's alias: {clash}")
        for alias, route in self.routing.aliases.items():
            unknown = [f for f in route.fallbacks if f not in aliases]
            if unknown:
                raise ValueError(f"routing.aliases.{alias}.fallbacks: unknown aliases {unknown}")
        if not is_loopback(self.server.host) and self.server.master_key is None:
            raise ValueError(
                f"server.host={self.server.host!r} is not a loopback address: binding beyond "
                "loopback requires authentication; set BASTION_MASTER_KEY (server.master_key)"
            )
        return self

    def model(self, name: str) -> ModelSpec | None:
        for spec in self.models:
            if spec.name == name:
                return spec
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}})")

        return _INTERPOLATE.sub(sub, value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _env_overrides(env: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key in _NOT_OVERRIDES:
            continue
        if key in _ALIASES:
            path = _ALIASES[key]
        elif "__" in key:
            path = tuple(p.lower() for p in key[len(ENV_PREFIX) :].split("__"))
        else:
            continue
        # secrets stay strings: YAML would turn an empty value into null (unset)
        value: Any = raw if path[-1] in ("master_key", "encryption_key") else yaml.safe_load(raw)
        out.append((path, value))
    return out


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            if isinstance(part, int):
                loc += f"[{part}]"
            else:
                loc += ("." if loc else "") + str(part)
        lines.append(f"  {loc or '<root>'}: {err['msg']}")
    return "\n".join(lines)


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The config file used when none is named: $BASTION_CONFIG, else ./bastion.yaml."""
    env = os.environ if env is None else env
    if env.get("BASTION_CONFIG"):
        return Path(env["BASTION_CONFIG"])
    default = Path("bastion.yaml")
    return default if default.exists() else None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    check_files: bool = True,
) -> Settings:
    """Read, merge and validate the configuration. Raises ConfigError naming the bad key.
    ``check_files=False`` skips loading ``server.tls``'s certificate and key."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    source = "defaults"
    if path is None:
        path = config_path(env)
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must be a mapping at the top level")
        data = _interpolate(loaded, env)
    for key_path, value in _env_overrides(env):
        _set_path(data, key_path, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, tuple(dotted.split(".")), value)
    try:
        return Settings.model_validate(data, context={"check_files": check_files})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from exc


def gateway_url(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> str:
    """The base URL a command on this machine reaches the gateway at: where ``serve``
    listens with the same config file and environment (``BASTION_HOST``,
    ``BASTION_PORT``), a wildcard address reached over loopback. A config that does not
    validate still gives its host and port from the environment, else the defaults.
    ``https`` when ``server.tls`` is set (its files are not read: a client may not be able to)."""
    env = os.environ if env is None else env
    scheme = "http"
    try:
        server = load_settings(path, env=env, check_files=False).server
        host, port = server.host, server.port
        scheme = "https" if server.tls is not None else "http"
    except ConfigError:
        host = env.get("BASTION_HOST", "").strip() or "127.0.0.1"
        raw_port = env.get("BASTION_PORT", "").strip()
        port = int(raw_port) if raw_port.isdigit() and 0 < int(raw_port) < 65536 else 8080
    return f"{scheme}://{url_host(host)}:{port}"


def url_host(host: str) -> str:
    """A bind address as a client reaches it in a URL: wildcards become loopback, IPv6
    literals are bracketed."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def read_secret_env(name: str) -> str | None:
    """Reads a secret named in the config (e.g. an upstream's ``api_key_env``). An empty or
    blank value counts as unset (sending ``Bearer `` is no credential), surrounding
    whitespace (a trailing newline from a file) is dropped."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()
