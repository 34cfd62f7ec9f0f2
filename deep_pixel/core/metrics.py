"""Confusion matrix and the accuracy figures derived from it (OA, kappa, P/R/F1/IoU)."""
from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Rows: reference class, columns: predicted class, over ``values`` (class values, 0 excluded).

    Reference pixels equal to 0 (unlabelled) are ignored; predictions outside ``values`` are
    counted in an extra "other" column so they still lower the reference class's recall.
    """

    def __init__(self, values):
        self.values = [int(v) for v in values]
        self.index = {v: i for i, v in enumerate(self.values)}
        n = len(self.values)
        self.matrix = np.zeros((n, n + 1), dtype=np.int64)

    def add(self, reference: np.ndarray, predicted: np.ndarray) -> None:
        ref = np.asarray(reference).ravel()
        pred = np.asarray(predicted).ravel()
        keep = ref != 0
        ref, pred = ref[keep], pred[keep]
        lut_size = int(max(ref.max(initial=0), pred.max(initial=0), max(self.values, default=0))) + 1
        lut = np.full(lut_size, -1, dtype=np.int64)
        for v, i in self.index.items():
            lut[v] = i
        ri = lut[ref]
        pi = lut[pred]
        ok = ri >= 0
        ri, pi = ri[ok], pi[ok]
        pi = np.where(pi < 0, len(self.values), pi)
        np.add.at(self.matrix, (ri, pi), 1)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def summary(self) -> dict:
        m = self.matrix.astype(np.float64)
        n = len(self.values)
        square = m[:, :n]
        total = m.sum()
        tp = np.diag(square)
        ref_tot = m.sum(axis=1)
        pred_tot = square.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(pred_tot > 0, tp / pred_tot, np.nan)
            recall = np.where(ref_tot > 0, tp / ref_tot, np.nan)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), np.nan)
            union = ref_tot + pred_tot - tp
            iou = np.where(union > 0, tp / union, np.nan)
        oa = tp.sum() / total if total else float("nan")
        pe = (ref_tot * pred_tot).sum() / total ** 2 if total else float("nan")
        kappa = (oa - pe) / (1 - pe) if total and pe < 1 else float("nan")
        present = ref_tot > 0
        per_class = [{"value": v, "precision": _f(precision[i]), "recall": _f(recall[i]), "f1": _f(f1[i]),
                      "iou": _f(iou[i]), "support": int(ref_tot[i])} for i, v in enumerate(self.values)]
        return {
            "overall_accuracy": _f(oa), "kappa": _f(kappa),
            "mean_iou": _f(np.nanmean(iou[present])) if present.any() else None,
            "mean_f1": _f(np.nanmean(f1[present])) if present.any() else None,
            "pixels": int(total), "per_class": per_class,
            "matrix": self.matrix.tolist(), "values": self.values,
        }


def _f(x):
    x = float(x)
    return None if np.isnan(x) else round(x, 6)
