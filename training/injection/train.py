"""Train, calibrate and evaluate Bastion's injection classifier; write the shipped model.

    .venv/bin/python training/injection/train.py            # evaluate + write the model
    .venv/bin/python training/injection/train.py --eval-only

Deterministic: the corpus is fixed (``data/corpus.jsonl``, made by ``generate.py``), the
splits are hashes of template ids, and the optimiser (full-batch L-BFGS in numpy) has no
randomness, so the same inputs give a byte-identical ``model.bin``.

Held-out evaluations (each trains a fresh model without the held-out rows, calibrates on a
calibration fold of templates it did not train on, and only then looks at the test rows):

* ``templates``: one fold of phrase templates (all families) never seen in training;
* ``family:<name>``: one whole attack family left out (tested with the benign test fold);
* ``injection_train.jsonl``: the shared data set, never used in training.

The shipped model is trained on the generated corpus and ``injection_train.jsonl``, minus
the calibration fold; its Platt scaling and operating threshold come from that fold. The
threshold is the point where 2 % of the fold's benign rows score above it, with every benign
family weighing the same (``--flat-threshold``: every row the same, the first version's way).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bastion.guards.injection.features import DIM, featurize  # noqa: E402
from bastion.guards.injection.model import MODEL_PATH, write_model  # noqa: E402
from bastion.guards.injection.normalize import fold  # noqa: E402
from bastion.guards.injection.rules import RuleTier  # noqa: E402

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "data" / "corpus.jsonl"
SHARED = ROOT.parent / "shared" / "data" / "injection_train.jsonl"
HANDWRITTEN = HERE / "data" / "handwritten_eval.jsonl"  # evaluation only, never trained on
HASH_MODULE = ROOT / "bastion" / "guards" / "injection" / "model_hash.py"
N_FOLDS = 5
TEST_FOLD = 0
CALIB_FOLD = 1
L2 = 1e-5
ITERS = 150
TARGET_FPR = 0.02  # on the calibration fold; leaves room under the 3 % budget
RULE_THRESHOLD = 0.5

F = npt.NDArray[np.float64]


@dataclass
class Data:
    rows: list[dict[str, Any]]
    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    y: F

    def subset(self, mask: npt.NDArray[np.bool_]) -> Data:
        sel = np.flatnonzero(mask)
        lens = np.diff(self.indptr)[sel]
        starts = self.indptr[sel]
        take = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lens, strict=True)])
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return Data([self.rows[i] for i in sel], indptr, self.indices[take], self.values[take],
                    self.y[sel])


def load_rows() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in CORPUS.open(encoding="utf-8")]
    for line in SHARED.open(encoding="utf-8"):
        r = json.loads(line)
        r.update(family="shared", template="shared", source="prompt")
        rows.append(r)
    return rows


def build(rows: list[dict[str, Any]]) -> Data:
    idx_parts, val_parts, lens = [], [], []
    for r in rows:
        view = fold(r["text"], unspace=False).text
        i, v = featurize(view, r.get("source") in ("document", "tool"))
        idx_parts.append(i)
        val_parts.append(v.astype(np.float64))
        lens.append(len(i))
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    y = np.array([float(r["label"]) for r in rows])
    return Data(rows, indptr, np.concatenate(idx_parts), np.concatenate(val_parts), y)


def fold_of(template: str) -> int:
    return zlib.crc32(template.encode()) % N_FOLDS


# --- logistic regression, full-batch L-BFGS --------------------------------------------------

def _margins(d: Data, w: F, b: float) -> F:
    contrib = d.values * w[d.indices]
    sums = np.add.reduceat(contrib, d.indptr[:-1]) if len(contrib) else np.zeros(len(d.y))
    sums[np.diff(d.indptr) == 0] = 0.0
    return sums + b


def _loss_grad(d: Data, sw: F, theta: F, l2: float) -> tuple[float, F]:
    w, b = theta[:-1], theta[-1]
    z = _margins(d, w, b)
    # weighted log loss, numerically stable
    loss = np.sum(sw * (np.logaddexp(0.0, z) - d.y * z)) + 0.5 * l2 * float(np.dot(w, w))
    p = 0.5 * (1.0 + np.tanh(0.5 * z))
    r = sw * (p - d.y)
    row = np.repeat(np.arange(len(d.y)), np.diff(d.indptr))
    gw = np.bincount(d.indices, weights=d.values * r[row], minlength=DIM) + l2 * w
    return float(loss), np.concatenate([gw, [r.sum()]])


def train_lr(d: Data, l2: float = L2, iters: int = ITERS) -> tuple[F, float]:
    """Class-balanced L2 logistic regression (weights sum to 1 per class)."""
    pos = d.y.sum()
    neg = len(d.y) - pos
    sw = np.where(d.y > 0.5, 0.5 / pos, 0.5 / neg)
    theta = np.zeros(DIM + 1)
    loss, g = _loss_grad(d, sw, theta, l2)
    s_hist: list[F] = []
    y_hist: list[F] = []
    for _ in range(iters):
        q = g.copy()
        alphas = []
        for s, yv in zip(reversed(s_hist), reversed(y_hist), strict=True):
            a = np.dot(s, q) / np.dot(yv, s)
            alphas.append(a)
            q -= a * yv
        if s_hist:
            q *= np.dot(s_hist[-1], y_hist[-1]) / np.dot(y_hist[-1], y_hist[-1])
        for (s, yv), a in zip(zip(s_hist, y_hist, strict=True), reversed(alphas), strict=True):
            beta = np.dot(yv, q) / np.dot(yv, s)
            q += s * (a - beta)
        direction = -q
        step = 1.0 if s_hist else 1.0 / max(1e-12, float(np.linalg.norm(g)))
        gd = float(np.dot(g, direction))
        while True:  # backtracking (Armijo)
            cand = theta + step * direction
            new_loss, new_g = _loss_grad(d, sw, cand, l2)
            if new_loss <= loss + 1e-4 * step * gd or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = cand - theta, new_g - g
        if np.dot(s_vec, y_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > 10:
                s_hist.pop(0)
                y_hist.pop(0)
        converged = abs(loss - new_loss) < 1e-9 * max(1.0, abs(loss))
        theta, loss, g = cand, new_loss, new_g
        if converged:
            break
    return theta[:-1], float(theta[-1])


def platt(z: F, y: F) -> tuple[float, float]:
    """Fit p = sigmoid(a z + b) on held-out margins (class-balanced), by Newton's method."""
    pos = y.sum()
    sw = np.where(y > 0.5, 0.5 / pos, 0.5 / (len(y) - pos))
    a, b = 1.0, 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        r = sw * (p - y)
        h = sw * p * (1 - p)
        g = np.array([np.dot(r, z), r.sum()])
        hess = np.array([[np.dot(h, z * z), np.dot(h, z)], [np.dot(h, z), h.sum()]])
        hess += 1e-9 * np.eye(2)
        da, db = np.linalg.solve(hess, g)
        a, b = a - da, b - db
        if abs(da) + abs(db) < 1e-10:
            break
    return float(a), float(b)


# --- scoring as the scanner does it ------------------------------------------------------------

@dataclass
class Fitted:
    w: F
    b: float
    a: float
    c: float
    threshold: float
    unshifted_threshold: float = 0.5

    def proba(self, d: Data) -> F:
        z = _margins(d, self.w, self.b)
        return 1.0 / (1.0 + np.exp(-(self.a * z + self.c)))


_CALIBRATION = {"family_balanced": True}  # --flat-threshold: every benign row weighs the same


def _fpr_point(benign: F, families: list[str]) -> float:
    """The lowest threshold whose false-positive rate on ``benign`` is at most TARGET_FPR,
    each benign family weighing the same: a thousand easy "what is the capital of ..."
    rows must not buy alarms on a hundred meta questions about system prompts."""
    if not _CALIBRATION["family_balanced"]:
        k = int(np.floor((1.0 - TARGET_FPR) * len(benign)))
        return float(np.sort(benign)[min(k, len(benign) - 1)] + 1e-6)
    count = Counter(families)
    w = np.array([1.0 / (count[f] * len(count)) for f in families])
    order = np.argsort(benign, kind="stable")
    p_s, tail = benign[order], np.cumsum(w[order][::-1])[::-1]  # tail[k] = weight of p_s[k:]
    k = int(np.argmax(tail <= TARGET_FPR)) if (tail <= TARGET_FPR).any() else len(p_s)
    return float(p_s[k - 1] + 1e-6) if k > 0 else 0.5


def fit(train: Data, calib: Data) -> Fitted:
    w, b = train_lr(train)
    a, c = platt(_margins(calib, w, b), calib.y)
    p = 1.0 / (1.0 + np.exp(-(a * _margins(calib, w, b) + c)))
    threshold = float(min(max(_fpr_point(p[calib.y < 0.5], [
        r["family"] for r, y in zip(calib.rows, calib.y, strict=True) if y < 0.5]), 0.5), 0.99))
    # Shift the prior so that the operating point is p = 0.5: the same decisions, but one
    # threshold (0.5) then serves the rules and the classifier alike.
    shift = float(np.log(threshold / (1.0 - threshold)))
    return Fitted(w, b, a, c - shift, 0.5, threshold)


_RULES = RuleTier()


def rule_scores(rows: list[dict[str, Any]]) -> F:
    out = []
    for r in rows:
        res = _RULES.scan(r["text"], r.get("source", "prompt"))
        out.append(max((f.score for f in res.findings), default=0.0))
    return np.array(out)


def metrics(y: F, pred: npt.NDArray[np.bool_]) -> dict[str, float]:
    pos, neg = y > 0.5, y < 0.5
    tpr = float(pred[pos].mean()) if pos.any() else float("nan")
    fpr = float(pred[neg].mean()) if neg.any() else float("nan")
    ba = (tpr + (1.0 - fpr)) / 2 if pos.any() and neg.any() else float("nan")
    return {"n": len(y), "attacks": int(pos.sum()), "tpr": round(tpr, 4),
            "fpr": round(fpr, 4), "balanced_accuracy": round(ba, 4)}


def evaluate(model: Fitted, test: Data) -> dict[str, dict[str, float]]:
    p = model.proba(test)
    rs = rule_scores(test.rows)
    return {
        "classifier": metrics(test.y, p >= model.threshold),
        "rules": metrics(test.y, rs >= RULE_THRESHOLD),
        "both": metrics(test.y, (p >= model.threshold) | (rs >= RULE_THRESHOLD)),
    }


def report(name: str, res: dict[str, dict[str, float]], threshold: float) -> None:
    for tier, m in res.items():
        print(f"{name:32s} {tier:10s} n={m['n']:5d} attacks={m['attacks']:5d} "
              f"BA={m['balanced_accuracy']:.3f} TPR={m['tpr']:.3f} FPR={m['fpr']:.3f}"
              + (f"  (p >= {threshold:.2f})" if tier == "classifier" else ""))
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--families", action="store_true", help="also leave out each attack family")
    ap.add_argument("--flat-threshold", action="store_true",
                    help="pick the threshold on all benign calibration rows alike (the old way)")
    args = ap.parse_args()
    _CALIBRATION["family_balanced"] = not args.flat_threshold
    t0 = time.time()
    rows = load_rows()
    data = build(rows)
    print(f"{len(rows)} rows, {int(data.y.sum())} attacks, {len(data.indices)} nonzeros "
          f"({time.time() - t0:.1f} s)")
    folds = np.array([fold_of(r["template"]) for r in rows])
    shared = np.array([r["family"] == "shared" for r in rows])
    families = np.array([r["family"] for r in rows])
    calib = (folds == CALIB_FOLD) & ~shared
    hand_rows = [json.loads(line) for line in HANDWRITTEN.open(encoding="utf-8")]
    hands = {name: build([r for r in hand_rows if r["family"] == f"handwritten_{name}"])
             for name in ("a", "b", "c")}
    results: dict[str, Any] = {}
    if not args.no_eval:
        test = (folds == TEST_FOLD) & ~shared
        train = ~test & ~calib & ~shared
        m = fit(data.subset(train), data.subset(calib))
        results["templates"] = evaluate(m, data.subset(test))
        report("held-out templates", results["templates"], m.threshold)
        by_family = {}
        pt = m.proba(data.subset(test))
        tf = families[test]
        for fam in sorted(set(tf)):
            sel = tf == fam
            by_family[fam] = round(float((pt[sel] >= m.threshold).mean()), 4)
        print("  flagged per family (templates fold):", by_family)
        results["templates_by_family"] = by_family

        train = ~calib & ~shared
        m = fit(data.subset(train), data.subset(calib))
        results["injection_train.jsonl"] = evaluate(m, data.subset(shared))
        report("held-out injection_train.jsonl", results["injection_train.jsonl"], m.threshold)
        for name, hand in hands.items():
            key = f"handwritten_{name} (generated-only model)"
            results[key] = evaluate(m, hand)
            report(f"handwritten {name}, generated-only", results[key], m.threshold)

        if args.families:
            attack_fams = sorted({r["family"] for r in rows if r["label"] == 1} - {"shared"})
            for fam in attack_fams:
                test = ((families == fam) | ((folds == TEST_FOLD) & (data.y < 0.5))) & ~shared
                train = ~test & ~calib & ~shared & (families != fam)
                m = fit(data.subset(train), data.subset(calib & (families != fam)))
                results[f"family:{fam}"] = evaluate(m, data.subset(test))
                report(f"held-out family {fam}", results[f"family:{fam}"], m.threshold)
    if args.eval_only:
        return
    train = ~calib
    m = fit(data.subset(train), data.subset(calib))
    for name, hand in hands.items():
        results[f"handwritten_{name}"] = evaluate(m, hand)
        report(f"handwritten {name}, shipped model", results[f"handwritten_{name}"], m.threshold)
    header = {
        "format": 1, "dim": DIM, "bias": m.b, "platt_a": m.a, "platt_b": m.c,
        "threshold": round(m.threshold, 4), "target_fpr_calibration": TARGET_FPR,
        "family_balanced_fpr": _CALIBRATION["family_balanced"],
        "balanced_platt_threshold": round(m.unshifted_threshold, 4),
        "l2": L2, "iters": ITERS, "rows": int((~calib).sum()),
        "corpus_sha256": hashlib.sha256(CORPUS.read_bytes()).hexdigest(),
        # not the leave-one-family-out runs: the file is the same with or without --families
        "heldout": {k: v["classifier"] for k, v in results.items()
                    if isinstance(v, dict) and "classifier" in v and not k.startswith("family:")},
    }
    write_model(MODEL_PATH, m.w.astype(np.float32), header)
    digest = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    HASH_MODULE.write_text(
        '"""SHA-256 of the shipped ``model.bin``; rewritten by ``training/injection/train.py``."""'
        f'\n\nMODEL_SHA256 = "{digest}"\n', encoding="utf-8")
    print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size} bytes) sha256 {digest}; "
          f"threshold {m.threshold:.4f}; {Counter(r['label'] for r in rows)}; "
          f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
