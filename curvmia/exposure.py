"""Per-example exposure: how far each sample's score stands above the target's non-members,
per attack × target, and the vulnerability ranking of the samples across targets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metric_frames import known_targets


def exposure(scores: np.ndarray, is_member: np.ndarray) -> np.ndarray:
    """Per sample, the fraction of the target's non-members it outscores (ties ½):
    1 − the FPR an attacker must accept to flag it.  NaN scores rank lowest.  A target
    whose members are unknown has no member marked: its exposure is then the fraction of
    the whole population a sample outscores (a ranking, not an FPR)."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    non = np.sort(s[~np.asarray(is_member, bool)])
    lo = np.searchsorted(non, s, "left")
    hi = np.searchsorted(non, s, "right")
    return (lo + hi) / (2.0 * len(non))


def per_example_frame(attack_results: dict, labels: np.ndarray) -> pd.DataFrame:
    """Tidy per-example results: one row per attack × target × sample with its label,
    membership, score and exposure."""
    parts = []
    for label, res in attack_results.items():
        for t, target in enumerate(res["targets"]):
            s, m = res["scores"][t], res["is_member"][t]
            parts.append(
                pd.DataFrame(
                    {
                        "attack": label,
                        "target": int(target),
                        "sample": np.arange(len(s)),
                        "label": labels,
                        "is_member": m,
                        "member_known": bool(known_targets(res)[t]),
                        "score": s,
                        "exposure": exposure(s, m),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def vulnerability_frame(per_example: pd.DataFrame, rank_label: str) -> pd.DataFrame:
    """Vulnerability ranking across targets: per sample and attack, the mean exposure
    (and mean raw score) over the targets of which it is a member; ranked by
    ``rank_label``'s exposure.
    Samples that are a member of no target come last (NaN).  A target whose members are
    unknown counts every sample (its exposure ranks the whole population)."""
    known = per_example["member_known"] if "member_known" in per_example else True
    mem = per_example[per_example.is_member | ~known]
    attacks = sorted(per_example["attack"].unique())
    # dropna=False and the reindex keep an attack whose scores are all NaN (legitimately,
    # e.g. a white-box feature not computed) as a NaN column instead of dropping it
    wide = mem.pivot_table(
        index="sample", columns="attack", values="exposure", aggfunc="mean", dropna=False
    ).reindex(columns=attacks)
    wide.columns = [f"exposure_{c}" for c in wide.columns]
    raw = mem.pivot_table(
        index="sample", columns="attack", values="score", aggfunc="mean", dropna=False
    ).reindex(columns=attacks)
    raw.columns = [f"score_{c}" for c in raw.columns]
    n_in = (
        per_example[per_example.is_member]
        .groupby("sample")["target"]
        .nunique()
        .rename("n_targets_member")
    )
    labels = per_example.groupby("sample")["label"].first()
    out = (
        pd.concat([labels, n_in, wide, raw], axis=1)
        .reset_index()
        .rename(columns={"index": "sample"})
    )
    out["n_targets_member"] = out["n_targets_member"].fillna(0).astype(int)
    key = f"exposure_{rank_label}"
    out = out.sort_values([key, "sample"], ascending=[False, True], na_position="last")
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)


def with_flags(vuln: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """The ranking with the realistic audit's per-sample ``n_flagged_<attack>`` columns (how
    many targets flag the sample as a member at the label-free threshold, stability.csv's
    level); rows and order unchanged."""
    cols = ["sample"] + [c for c in flags.columns if c.startswith("n_flagged_")]
    return vuln.merge(flags[cols], on="sample", how="left")
