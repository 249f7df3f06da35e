"""Per-sample stability of a label-free audit (docs/method.md: Realistic audit metrics):
at one FPR level, which members each real target flags, how far two targets agree on the
members they share, and per sample how many targets flag it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STABILITY_COLUMNS = ["attack", "target_a", "target_b", "jaccard", "n_common", "fpr_level"]


def stability_level(realistic: pd.DataFrame) -> float:
    """The smallest FPR level supported (10/FPR rule) for every target of one attack's rows
    of realistic.csv; NaN when none is."""
    ok = realistic.groupby("fpr_level")["supported"].all()
    levels = ok.index[ok.to_numpy(dtype=bool)]
    return float(levels.min()) if len(levels) else float("nan")


def flagged_members(scores: np.ndarray, is_member: np.ndarray, threshold: float) -> np.ndarray:
    """(T, N) bool: members whose score is at least the threshold (NaN never flagged)."""
    s = np.asarray(scores, dtype=np.float64)
    return (s >= threshold) & np.asarray(is_member, dtype=bool)


def pair_jaccard(flag_a: np.ndarray, flag_b: np.ndarray, common: np.ndarray) -> tuple[float, int]:
    """(Jaccard, n_common): |A ∩ B| / |A ∪ B| of the flagged members A, B among the samples
    ``common`` that are members of both targets.  NaN when they share no member (complement
    targets) or neither flags any shared member (nothing to agree on)."""
    a, b, c = (np.asarray(x, dtype=bool) for x in (flag_a, flag_b, common))
    n_common = int(c.sum())
    union = int((c & (a | b)).sum())
    if n_common == 0 or union == 0:
        return float("nan"), n_common
    return int((c & a & b).sum()) / union, n_common


def stability_frames(
    attacks: dict[str, dict], realistic: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairs, samples): per attack and pair of known targets the Jaccard agreement at the
    attack's :func:`stability_level` (with ``n_common``); per sample and attack
    ``n_flagged_<attack>``, the number of targets that flag it as a member (beside
    ``n_targets_member``, of how many it is one).  An attack with
    no level supported for every target has no rows and NaN counts."""
    from .metric_frames import known_only

    known = known_only(attacks)
    pairs, counts = [], {}
    if known:
        first = np.asarray(next(iter(known.values()))["is_member"], dtype=bool)
        counts["n_targets_member"] = first.sum(0)
    for label, res in known.items():
        rows = realistic[realistic["attack"] == label]
        level = stability_level(rows)
        n = np.asarray(res["scores"]).shape[1]
        if np.isnan(level):
            counts[f"n_flagged_{label}"] = np.full(n, np.nan)
            continue
        thr = float(rows.loc[rows["fpr_level"] == level, "threshold"].iloc[0])
        m = np.asarray(res["is_member"], dtype=bool)
        flags = flagged_members(res["scores"], m, thr)
        targets = [int(t) for t in res["targets"]]
        for i in range(len(targets)):
            for j in range(i + 1, len(targets)):
                jac, n_common = pair_jaccard(flags[i], flags[j], m[i] & m[j])
                pairs.append([label, targets[i], targets[j], jac, n_common, level])
        counts[f"n_flagged_{label}"] = flags.sum(0)
    samples = pd.DataFrame(counts)
    samples.insert(0, "sample", np.arange(len(samples)))
    return pd.DataFrame(pairs, columns=STABILITY_COLUMNS), samples
