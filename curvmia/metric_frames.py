"""Tidy metric frames of the attack results: every metric per attack × target with mean and
std rows, and paired AUROC differences, both from bootstrap counts shared across attacks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import bootstrap_weights, paired_auroc_difference, summarize

AGGREGATES = ("mean", "std")


class _Weights:
    """Bootstrap counts per target (seed + target index), drawn once and shared by every
    attack with the same members on that target, so differences between them are paired."""

    def __init__(self, n_boot: int, seed: int):
        self.n_boot, self.seed, self.cache = n_boot, seed, {}

    def __call__(self, t: int, is_member: np.ndarray) -> np.ndarray | None:
        if self.n_boot <= 0:
            return None
        m = np.asarray(is_member, bool)
        key = (t, m.tobytes())
        if key not in self.cache:
            self.cache[key] = bootstrap_weights(m, n_boot=self.n_boot, seed=self.seed + t)
        return self.cache[key]


def metrics_frame(
    attack_results: dict[str, dict[str, np.ndarray]],
    *,
    fprs: list[float],
    n_boot: int,
    seed: int,
    ci_fpr: float = 0.01,
) -> pd.DataFrame:
    """Tidy metrics: one row per attack × target, then ``mean`` and ``std`` (ddof 0) rows.

    ``attack_results`` maps an attack label to ``{"scores": (T, N),
    "is_member": (T, N), "targets": (T,)}`` as written by the attack step (plus,
    optionally, ``n_shadows``, ``n_no_in_shadow``, ``n_no_out_shadow``).  Bootstrap
    counts are drawn once per target (seed + target index) and shared by all attacks.
    """
    weights = _Weights(n_boot, seed)
    rows = []
    for label, res in attack_results.items():
        extra = {
            k: int(res[k]) for k in ("n_shadows", "n_no_in_shadow", "n_no_out_shadow") if k in res
        }
        for t, target in enumerate(res["targets"]):
            m = summarize(
                res["scores"][t],
                res["is_member"][t],
                fprs=fprs,
                n_boot=n_boot,
                seed=seed + t,
                ci_fpr=ci_fpr,
                weights=weights(t, res["is_member"][t]),
            )
            rows.append({"attack": label, "target": str(int(target)), **m, **extra})
    df = pd.DataFrame(rows)
    metric_cols = [c for c in df.columns if c not in ("attack", "target")]
    agg = []
    for label, g in df.groupby("attack", sort=False):
        for name in AGGREGATES:
            vals = g[metric_cols].agg(name, ddof=0) if name == "std" else g[metric_cols].mean()
            agg.append({"attack": label, "target": name, **vals.to_dict()})
    return pd.concat([df, pd.DataFrame(agg)], ignore_index=True)


def paired_frame(
    attack_results: dict[str, dict[str, np.ndarray]],
    pairs: list[list[str]],
    *,
    n_boot: int,
    seed: int,
) -> tuple[pd.DataFrame, list[list[str]]]:
    """AUROC(a) − AUROC(b) per target with paired 95% bootstrap intervals (the same
    counts as :func:`metrics_frame`), plus mean/std rows.  Returns the frame and the
    pairs skipped because a label is not configured."""
    weights = _Weights(max(n_boot, 1), seed)
    rows, skipped = [], []
    for a, b in pairs:
        if a not in attack_results or b not in attack_results:
            skipped.append([a, b])
            continue
        ra, rb = attack_results[a], attack_results[b]
        per = []
        for t, target in enumerate(ra["targets"]):
            m = ra["is_member"][t]
            if not np.array_equal(m, rb["is_member"][t]):
                raise ValueError(f"paired difference {a} − {b}: target {target} differs")
            d = paired_auroc_difference(ra["scores"][t], rb["scores"][t], m, weights=weights(t, m))
            per.append(d)
            rows.append({"a": a, "b": b, "target": str(int(target)), **d})
        diffs = np.array([p["diff"] for p in per])
        rows.append({"a": a, "b": b, "target": "mean", "diff": diffs.mean()})
        rows.append({"a": a, "b": b, "target": "std", "diff": diffs.std()})
    cols = ["a", "b", "target", "diff", "diff_lo", "diff_hi"]
    return pd.DataFrame(rows, columns=cols), skipped


def known_targets(res: dict[str, np.ndarray]) -> np.ndarray:
    """Per target of an attack result, whether its members are known (older results: all)."""
    return np.asarray(res.get("known", np.ones(len(res["targets"]), dtype=bool)), dtype=bool)


def known_only(attack_results: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """The attack results restricted to the targets whose members are known (the metrics'
    input: AUROC and TPR need the true members)."""
    out = {}
    for label, res in attack_results.items():
        k = known_targets(res)
        out[label] = {
            key: (v[k] if key in ("scores", "is_member", "targets", "known") else v)
            for key, v in res.items()
        }
    return out
