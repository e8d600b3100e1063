"""Hashed character and word n-gram features, computed with numpy (no scikit-learn).

The classifier's input is the folded view of a text (:func:`normalize.fold`, without
un-spacing), so look-alike letters, accents and leetspeak do not create new features.
Features:

* character 3-, 4- and 5-grams of the view with whitespace collapsed, hashed with a
  vectorised polynomial hash over code points;
* word unigrams and bigrams (words hashed with CRC-32, bigrams combined in numpy);
* one indicator for indirect sources (documents, tool output).

Counts are damped with ``log1p`` and each block is L2-normalised, so a long text does not
score higher just for being long. Training (``training/injection/train.py``) and inference
call the same :func:`featurize`, which is what keeps the shipped weights meaningful.
"""

from __future__ import annotations

import re
import zlib
from typing import Final

import numpy as np
import numpy.typing as npt

DIM_BITS: Final = 18
DIM: Final = 1 << DIM_BITS
CHAR_NS: Final = (3, 4, 5)
# the last slot is the indirect-source indicator; n-gram hashes never land there
INDIRECT_FEATURE: Final = DIM - 1
_P: Final = np.uint64(0x100000001B3)
_M1: Final = np.uint64(0xFF51AFD7ED558CCD)
_S33: Final = np.uint64(33)
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    h = h ^ (h >> _S33)
    h = h * _M1
    return h ^ (h >> _S33)


def _slot(h: npt.NDArray[np.uint64]) -> IntArray:
    # DIM-1 is reserved; map hashes onto [0, DIM-2]
    return (_mix(h) % np.uint64(DIM - 1)).astype(np.int64)


def _char_hashes(view: str) -> IntArray:
    s = " " + _WS.sub(" ", view).strip() + " "
    cps = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    out = []
    with np.errstate(over="ignore"):
        for n in CHAR_NS:
            if len(cps) < n:
                continue
            m = len(cps) - n + 1
            h = np.full(m, np.uint64(n * 0x9E3779B1), dtype=np.uint64)
            for k in range(n):
                h = h * _P + cps[k : k + m]
            out.append(_slot(h))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _word_hashes(view: str) -> IntArray:
    words = _WORD.findall(view)
    if not words:
        return np.zeros(0, dtype=np.int64)
    w = np.fromiter((zlib.crc32(x.encode("utf-8")) for x in words), dtype=np.uint64,
                    count=len(words))
    with np.errstate(over="ignore"):
        uni = _slot(w * np.uint64(31) + np.uint64(0x5BD1E995))
        if len(w) > 1:
            bi = _slot(w[:-1] * _P + w[1:] + np.uint64(0x27D4EB2F))
            return np.concatenate([uni, bi])
    return uni


def _block(idx: IntArray) -> tuple[IntArray, FloatArray]:
    if idx.size == 0:
        return idx, np.zeros(0, dtype=np.float32)
    uniq, counts = np.unique(idx, return_counts=True)
    val = np.log1p(counts.astype(np.float32))
    val /= np.float32(np.sqrt(float(np.dot(val, val))))
    return uniq, val


def featurize(view: str, indirect: bool = False) -> tuple[IntArray, FloatArray]:
    """Sparse feature vector of a folded view: ``(indices, values)``; indices may repeat
    across blocks (a dot product sums them, which is what the model was trained with)."""
    ci, cv = _block(_char_hashes(view))
    wi, wv = _block(_word_hashes(view))
    idx = [ci, wi]
    val = [cv, wv]
    if indirect:
        idx.append(np.array([INDIRECT_FEATURE], dtype=np.int64))
        val.append(np.ones(1, dtype=np.float32))
    return np.concatenate(idx), np.concatenate(val)


def _rows_block(rows: IntArray, slots: IntArray, n_rows: int) -> tuple[IntArray, IntArray,
                                                                          FloatArray]:
    """:func:`_block` for many texts at once: per-row log1p counts, L2-normalised per row."""
    if slots.size == 0:
        return rows, slots, np.zeros(0, dtype=np.float32)
    uniq, counts = np.unique(rows * DIM + slots, return_counts=True)
    r, s = uniq // DIM, uniq % DIM
    val = np.log1p(counts.astype(np.float32))
    norm = np.sqrt(np.bincount(r, weights=val.astype(np.float64) ** 2, minlength=n_rows))
    return r, s, (val / norm[r].astype(np.float32)).astype(np.float32)


def _many_char_hashes(views: list[str]) -> tuple[IntArray, IntArray]:
    padded = [" " + _WS.sub(" ", v).strip() + " " for v in views]
    lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=len(padded))
    cps = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    row_of = np.repeat(np.arange(len(views), dtype=np.int64), lengths)
    rows, slots = [], []
    with np.errstate(over="ignore"):
        for n in CHAR_NS:
            m = len(cps) - n + 1
            if m <= 0:
                continue
            h = np.full(m, np.uint64(n * 0x9E3779B1), dtype=np.uint64)
            for k in range(n):
                h = h * _P + cps[k : k + m]
            ok = row_of[:m] == row_of[n - 1 :]  # n-grams never span two texts
            rows.append(row_of[:m][ok])
            slots.append(_slot(h[ok]))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(slots)


def _many_word_hashes(views: list[str]) -> tuple[IntArray, IntArray]:
    per_text = [_WORD.findall(v) for v in views]
    counts = np.fromiter((len(ws) for ws in per_text), dtype=np.int64, count=len(views))
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    w = np.fromiter((zlib.crc32(x.encode("utf-8")) for ws in per_text for x in ws),
                    dtype=np.uint64, count=total)
    row_of = np.repeat(np.arange(len(views), dtype=np.int64), counts)
    with np.errstate(over="ignore"):
        uni = _slot(w * np.uint64(31) + np.uint64(0x5BD1E995))
        ok = row_of[:-1] == row_of[1:]
        bi = _slot(w[:-1][ok] * _P + w[1:][ok] + np.uint64(0x27D4EB2F))
    return np.concatenate([row_of, row_of[:-1][ok]]), np.concatenate([uni, bi])


def margins_many(weights: FloatArray, bias: float, views: list[str],
                 indirect: bool = False) -> npt.NDArray[np.float64]:
    """``weights . featurize(v, indirect) + bias`` for every view, in one vectorised pass:
    scoring the 40 short units of a document one by one costs ~40 numpy round trips each."""
    n = len(views)
    total = np.full(n, bias + (float(weights[INDIRECT_FEATURE]) if indirect else 0.0))
    for rows, slots in (_many_char_hashes(views), _many_word_hashes(views)):
        r, s, v = _rows_block(rows, slots, n)
        if s.size:
            total += np.bincount(r, weights=(weights[s] * v).astype(np.float64), minlength=n)
    return total
