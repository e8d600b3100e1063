"""The shipped linear classifier: load with a SHA-256 check, score texts.

File format (``model.bin``, written by ``training/injection/train.py``): the magic line
``BASTION-INJ-1\\n``, a 4-byte little-endian header length, a JSON header (feature
settings, bias, Platt calibration, the operating threshold and the held-out metrics it was
chosen on), then ``DIM`` float16 weights. A custom format rather than ``.npz`` so that the
same training run writes byte-identical files (zip members carry timestamps).

The file's SHA-256 is pinned in :mod:`model_hash`; :func:`load_model` refuses a file that
does not match before parsing anything.

Long texts are scored in overlapping windows and the highest window wins: an injection of
two sentences inside a long document would otherwise be diluted by the normalisation.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bastion.backends.embedding_local import IntegrityError, verify_sha256
from bastion.guards.injection.features import DIM, featurize, margins_many
from bastion.guards.injection.model_hash import MODEL_SHA256

MAGIC: Final = b"BASTION-INJ-1\n"
MODEL_PATH: Final = Path(__file__).with_name("model.bin")
WINDOW: Final = 600  # characters per window for long texts
STRIDE: Final = 300

__all__ = ["MODEL_PATH", "IntegrityError", "LinearModel", "load_model", "windows",
           "write_model"]


@dataclass(frozen=True, slots=True)
class LinearModel:
    weights: npt.NDArray[np.float32]
    bias: float
    platt_a: float  # calibrated p = sigmoid(a * margin + b)
    platt_b: float
    threshold: float  # the operating point (a calibrated probability)
    meta: dict[str, Any]

    def margin(self, idx: npt.NDArray[np.int64], val: npt.NDArray[np.float32]) -> float:
        return float(np.dot(self.weights[idx], val)) + self.bias

    def probability(self, margin: float) -> float:
        z = self.platt_a * margin + self.platt_b
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def score(self, view: str, indirect: bool = False) -> tuple[float, int, int]:
        """Calibrated probability that ``view`` (a folded text) is an attack, and the
        window ``[start, end)`` of the view that scored it."""
        if len(view) <= WINDOW + STRIDE:
            return self.probability(self.margin(*featurize(view, indirect))), 0, len(view)
        return self.score_spans(view, windows(view), indirect)

    def score_spans(self, view: str, spans: list[tuple[int, int]],
                    indirect: bool = False) -> tuple[float, int, int]:
        """The best of ``spans`` of ``view``, each scored alone, in one vectorised pass:
        ``(p, start, end)``, or ``(0.0, 0, 0)`` for no spans."""
        if not spans:
            return 0.0, 0, 0
        m = margins_many(self.weights, self.bias, [view[a:e] for a, e in spans], indirect)
        i = int(np.argmax(m))
        return self.probability(float(m[i])), spans[i][0], spans[i][1]


def windows(view: str) -> list[tuple[int, int]]:
    """Overlapping windows of a long view, starting and ending on a space so that no
    window cuts a word."""
    out = []
    for s in [*range(0, len(view) - WINDOW, STRIDE), len(view) - WINDOW]:
        a = view.rfind(" ", max(0, s - 40), s + 1) + 1 if s else 0
        e = view.find(" ", s + WINDOW)
        e = len(view) if e < 0 or e > s + WINDOW + 40 else e
        out.append((a, e))
    return out


def write_model(path: Path, weights: npt.NDArray[np.float32], header: dict[str, Any]) -> None:
    if weights.shape != (DIM,):
        raise ValueError(f"expected {DIM} weights, got {weights.shape}")
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    with path.open("wb") as fh:
        fh.write(MAGIC)
        fh.write(struct.pack("<I", len(head)))
        fh.write(head)
        fh.write(weights.astype("<f2").tobytes())


def load_model(path: Path = MODEL_PATH, sha256: str = MODEL_SHA256) -> LinearModel:
    """Load the classifier, after checking the file against ``sha256`` (raises
    :class:`IntegrityError` on a mismatch, ``ValueError`` on a malformed file)."""
    verify_sha256(path, sha256)
    blob = path.read_bytes()
    if not blob.startswith(MAGIC):
        raise ValueError(f"{path}: not a Bastion injection model")
    pos = len(MAGIC)
    (n,) = struct.unpack_from("<I", blob, pos)
    pos += 4
    header = json.loads(blob[pos : pos + n].decode("utf-8"))
    pos += n
    if header.get("dim") != DIM or len(blob) - pos != 2 * DIM:
        raise ValueError(f"{path}: feature dimension does not match this version of Bastion")
    weights = np.frombuffer(blob, dtype="<f2", count=DIM, offset=pos).astype(np.float32)
    return LinearModel(weights, float(header["bias"]), float(header["platt_a"]),
                       float(header["platt_b"]), float(header["threshold"]), header)
