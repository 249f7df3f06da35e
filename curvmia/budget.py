"""The shadow budget (docs/method.md: Shadow budget): every attack's AUROC and label-free TPR
when only K of the reference models are at hand, over seeded subsets per K.

A *unit* is what K counts: one shadow, or in the pairs layout (every kept shadow's
complement kept too) one whole complement pair, so that every subset keeps each sample IN
exactly half of its references.  Per K, up to ``draws`` distinct subsets of K units are drawn
from the seed (all of them when there are fewer); the same subsets serve every attack, so
attacks are compared on the same references.  Within a subset the attack scores every real
target, and every reference in turn plays a pseudo-target scored by the subset's other
references minus its complement (curvmia/pseudo_targets.py): the label-free threshold at
FPR α is the median of their thresholds (curvmia/realistic.py), applied to each target.

``shadow`` maps feature names to (S, N, Q) arrays of the kept shadows in ``rows`` order,
``targets`` is a list of per-target dicts of (N, Q) arrays, as in curvmia/attacks.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .attacks import coverage, run_attack, spec_label
from .metrics import auroc, enough_nonmembers
from .pseudo_targets import complement_positions, pseudo_target_scores
from .realistic import achieved, labelfree_thresholds

# Attacks whose score needs an IN and an OUT reference of each sample: with one reference
# model every sample lacks a side (NaN), so they are not run below two models.  rmia_online
# averages over all references (IN or OUT), the others read the OUT side or nothing.
ONLINE = frozenset({"curv_nll", "curv_lr", "lira_online", "sablayrolles", "carlini_paper"})
# Attacks that read no reference model: their pseudo-targets need none.
REFERENCE_FREE = frozenset({"yeom"})
COLUMNS = ["attack", "n_refs", "draw", "auroc", "tpr", "fpr_level"]
EXTRA = ["fpr", "n_models", "n_no_in_shadow", "n_no_out_shadow", "nan_share", "rows", "note"]
DRAW_SALT = 0xB0D6E7  # separates these draws from any other use of metrics.seed


def budget_units(rows: list[int], n_random: int, complements: bool) -> list[np.ndarray]:
    """Positions (in ``rows``) of each unit K counts: whole complement pairs when every row's
    complement is among ``rows`` (the pairs layout), else single rows."""
    comp = complement_positions(rows, n_random, complements)
    if len(rows) and complements and (comp >= 0).all():
        return [np.array([i, c]) for i, c in enumerate(comp) if i < c]
    return [np.array([i]) for i in range(len(rows))]


def budget_ks(ks: list[int] | None, n_units: int) -> list[int]:
    """The K list: ``metrics.budget_ks`` (sorted, unique), or with None the powers of two below
    ``n_units`` and ``n_units`` itself (all references)."""
    if ks is None:
        return [2**i for i in range(max(n_units - 1, 0).bit_length()) if 2**i < n_units] + [n_units]
    bad = [k for k in ks if not 1 <= k <= n_units]
    if bad:
        raise ValueError(
            f"metrics.budget_ks: {bad} outside 1..{n_units} (the units K counts: "
            "shadows, or whole complement pairs in the pairs layout)"
        )
    return sorted(set(ks))


def draw_subsets(n_units: int, k: int, draws: int, seed: int) -> list[np.ndarray]:
    """``draws`` distinct K-subsets of range(n_units) (sorted unit indices), from a generator
    seeded by (seed, K) so that one K's draws do not depend on the rest of the K list; all
    C(n_units, K) subsets, in lexicographic order, when there are no more than ``draws``."""
    if not 1 <= k <= n_units:
        raise ValueError(f"K = {k} outside 1..{n_units}")
    if draws < 1:
        raise ValueError(f"metrics.budget_draws: needs at least 1, got {draws}")
    if math.comb(n_units, k) <= draws:
        return [np.array(c) for c in itertools.combinations(range(n_units), k)]
    rng = np.random.default_rng([seed, DRAW_SALT, k])
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < draws:
        s = np.sort(rng.choice(n_units, size=k, replace=False))
        if tuple(s) not in seen:
            seen.add(tuple(s))
            out.append(s)
    return out


def fpr_level(fprs: list[float], n_nonmembers: int) -> float:
    """The lowest level of ``fprs`` that ``n_nonmembers`` support (the 10/FPR rule,
    curvmia/metrics.py), NaN when none does."""
    ok = [f for f in sorted(fprs) if enough_nonmembers(f, n_nonmembers)]
    return ok[0] if ok else float("nan")


def min_references(spec: dict) -> int:
    """How many reference models the attack needs to score at all (2: an IN and an OUT)."""
    if spec["name"] in ONLINE:
        return 2
    return 0 if spec["name"] in REFERENCE_FREE else 1


def _labelfree_tpr(spec, targets_sc, target_in, shadow, shadow_in, labels, comp, level):
    """Mean over targets of (FPR, TPR) at the subset's label-free threshold; NaN when no
    pseudo-target scored a non-member (e.g. zero variances): no threshold to calibrate."""
    pseudo = pseudo_target_scores(spec, shadow, shadow_in, labels, comp)
    thr = labelfree_thresholds(pseudo, shadow_in, [level])[0]
    if np.isnan(thr):
        return np.nan, np.nan
    fpr, tpr = np.mean([achieved(s, m, thr) for s, m in zip(targets_sc, target_in)], axis=0)
    return float(fpr), float(tpr)


def evaluate_subset(
    spec: dict,
    targets: list[dict[str, np.ndarray]],
    target_in: np.ndarray,
    shadow: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    rows: list[int],
    labels: np.ndarray,
    *,
    n_random: int,
    complements: bool,
    level: float,
) -> dict[str, object]:
    """One attack with the references ``shadow`` (one subset): AUROC and label-free (FPR,
    TPR) at ``level``, each averaged over the targets, with the subset's coverage; NaN with
    a note where the subset is too small (docs/method.md: Shadow budget)."""
    n, need = len(rows), min_references(spec)
    comp = complement_positions(rows, n_random, complements)
    n_pseudo_refs = n - 1 - int((comp >= 0).any())  # a pseudo-target's references
    out = {"auroc": np.nan, "tpr": np.nan, "fpr": np.nan, "nan_share": np.nan, "note": ""}
    out |= {"n_models": n, **coverage(shadow_in), "rows": " ".join(map(str, rows))}
    if n < need:
        out["note"] = f"needs an IN and an OUT reference: at least {need} reference models"
        return out
    scores, _ = run_attack(spec, targets, shadow, shadow_in, target_in, labels)
    out["nan_share"] = float(np.isnan(scores).mean())
    if out["nan_share"] == 1.0:  # e.g. zero variances of one model per side: no result
        out["note"] = "every target score is NaN"
        return out
    out["auroc"] = float(np.mean([auroc(s, m) for s, m in zip(scores, target_in)]))
    if np.isnan(level):
        out["note"] = "no FPR level of metrics.fprs has 10/FPR non-members"
    elif n_pseudo_refs < max(need, 1):
        out["note"] = (
            f"a pseudo-target keeps {n_pseudo_refs} reference models, the label-free "
            f"threshold needs {max(need, 1)}"
        )
    else:
        out["fpr"], out["tpr"] = _labelfree_tpr(
            spec, scores, target_in, shadow, shadow_in, labels, comp, level
        )
        if np.isnan(out["tpr"]):
            out["note"] = "every pseudo-target score is NaN: no label-free threshold"
    return out


def budget_frame(
    specs: list[dict],
    targets: list[dict[str, np.ndarray]],
    target_in: np.ndarray,
    shadow: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    rows: list[int],
    labels: np.ndarray,
    *,
    n_random: int,
    complements: bool,
    ks: list[int] | None,
    draws: int,
    seed: int,
    fprs: list[float],
) -> pd.DataFrame:
    """Every attack at every K and draw (columns :data:`COLUMNS` then :data:`EXTRA`).

    The FPR level is one for the whole table: the lowest of ``fprs`` supported by the
    smaller of the targets' and the shadows' non-member counts (every pseudo-target is a
    shadow), so that the TPRs at different K are comparable."""
    target_in, shadow_in = np.asarray(target_in, bool), np.asarray(shadow_in, bool)
    units = budget_units(rows, n_random, complements)
    n_non = int(min((~target_in).sum(1).min(), (~shadow_in).sum(1).min()))
    level = fpr_level(fprs, n_non)
    out = []
    for k in budget_ks(ks, len(units)):
        for d, subset in enumerate(draw_subsets(len(units), k, draws, seed)):
            pos = np.sort(np.concatenate([units[u] for u in subset]))
            full = len(pos) == len(rows)  # all references: the attack step's own arrays
            sub = shadow if full else {f: v[pos] for f, v in shadow.items()}
            for spec in specs:
                res = evaluate_subset(
                    spec,
                    targets,
                    target_in,
                    sub,
                    shadow_in[pos],
                    [rows[i] for i in pos],
                    labels,
                    n_random=n_random,
                    complements=complements,
                    level=level,
                )
                out.append(
                    {"attack": spec_label(spec), "n_refs": k, "draw": d, "fpr_level": level, **res}
                )
    return pd.DataFrame(out, columns=COLUMNS + EXTRA)


def budget_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per attack and K: mean and spread (std over draws, ddof 0) of AUROC and TPR."""
    g = df.groupby(["attack", "n_refs"], sort=False)
    out = g.agg(
        draws=("draw", "size"),
        auroc=("auroc", "mean"),
        auroc_std=("auroc", lambda x: x.std(ddof=0)),
        tpr=("tpr", "mean"),
        tpr_std=("tpr", lambda x: x.std(ddof=0)),
        fpr=("fpr", "mean"),
    )
    return out.reset_index()
