"""Tidy metrics frame and the markdown table."""

import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from curvmia.report import markdown_table, metrics_frame


def _results():
    rng = np.random.default_rng(0)
    out = {}
    for label, shift in (("strong", 1.0), ("weak", 0.1)):
        m = rng.random((3, 400)) < 0.5
        out[label] = {
            "scores": rng.normal(0, 1, (3, 400)) + shift * m,
            "is_member": m,
            "targets": np.array([5, 6, 7]),
        }
    return out


def test_metrics_frame_rows_and_aggregates():
    res = _results()
    df = metrics_frame(res, fprs=[0.1, 0.01], n_boot=20, seed=0)
    # one row per attack × target, then mean and std rows per attack
    assert list(df.target) == ["5", "6", "7", "5", "6", "7", "mean", "std", "mean", "std"]
    strong = df[df.attack == "strong"].set_index("target")
    aucs = [
        roc_auc_score(res["strong"]["is_member"][t], res["strong"]["scores"][t]) for t in range(3)
    ]
    assert strong.loc["mean", "auroc"] == pytest.approx(np.mean(aucs))
    assert strong.loc["std", "auroc"] == pytest.approx(np.std(aucs))  # ddof 0
    # 200 non-members: TPR@10% is reported, TPR@1% needs 1000 and is not
    assert strong.loc["5", "tpr@0.1"] >= 0 and np.isnan(strong.loc["5", "tpr@0.01"])


def test_markdown_table_is_well_formed():
    df = metrics_frame(_results(), fprs=[0.1, 0.01], n_boot=0, seed=0)
    md = markdown_table(df, [0.1, 0.01])
    rows = [line for line in md.splitlines() if line.startswith("|")]
    cells = {len(re.split(r"(?<!\\)\|", line)) for line in rows}
    assert len(cells) == 1 and len(rows) == 4  # header, rule, two attacks
    assert "| strong | " in md and "n/a" in md and "fewer than 10/FPR" in md
