"""Membership masks and sound shadow/target layouts (docs/method.md: Membership layouts).

A mask set holds K random rows ``M[i] ~ Bernoulli(pkeep)`` over the population
and, when complements are on (pkeep = 0.5 only), rows ``M[i + K] = 1 − M[i]``.
An experiment names which rows are shadows and which are targets; only those
models are trained.  A target whose complement is a shadow biases every
per-example IN/OUT statistic, so such layouts are refused.
"""

from __future__ import annotations

import numpy as np


def make_masks(
    n_population: int, n_random: int, pkeep: float, seed: int, complements: bool
) -> np.ndarray:
    """Seeded mask set, bool array of shape (K or 2K, n_population)."""
    if complements and pkeep != 0.5:
        raise ValueError(f"masks.complements needs masks.pkeep = 0.5, got {pkeep}")
    if not 0.0 < pkeep < 1.0:
        raise ValueError(f"masks.pkeep must be in (0, 1), got {pkeep}")
    rng = np.random.default_rng(seed)
    rows = rng.random((n_random, n_population)) < pkeep
    if complements:
        rows = np.concatenate([rows, ~rows], axis=0)
    return rows


def n_rows(n_random: int, complements: bool) -> int:
    """Number of rows of a mask set."""
    return 2 * n_random if complements else n_random


def complement_of(row: int, n_random: int, complements: bool) -> int | None:
    """Index of the complement of ``row``, or None when the set has no complements."""
    if not complements:
        return None
    return row + n_random if row < n_random else row - n_random


def check_layout(shadows: list[int], targets: list[int], n_random: int, complements: bool) -> str:
    """Validate a shadow/target layout; return ``"pairs"`` or ``"independent"``.

    ``pairs``: the shadows are complete complement pairs, so every sample is IN
    exactly half of them (docs/method.md: Membership layouts).  ``independent``: no target's
    complement is a shadow (layout b, the paper's).  Anything else raises.
    """
    total = n_rows(n_random, complements)
    for key, rows in (("masks.shadows", shadows), ("masks.targets", targets)):
        if not rows:
            raise ValueError(f"{key}: at least one row is needed")
        bad = [r for r in rows if not 0 <= r < total]
        if bad:
            raise ValueError(f"{key}: rows {bad} outside the mask set's 0..{total - 1}")
        if len(set(rows)) != len(rows):
            raise ValueError(f"{key}: duplicate rows in {rows}")
    both = sorted(set(shadows) & set(targets))
    if both:
        raise ValueError(f"masks.targets: rows {both} are also shadows")
    if len(shadows) < 2:
        raise ValueError("masks.shadows: need at least 2 shadows for IN/OUT statistics")
    if not complements:
        return "independent"
    shadow_set = set(shadows)
    clash = [t for t in targets if complement_of(t, n_random, complements) in shadow_set]
    if clash:
        raise ValueError(
            f"masks.targets: rows {clash} have their complement among the shadows; this biases "
            "every IN/OUT statistic (docs/method.md: Membership layouts). Use complete shadow "
            "pairs or drop the complements."
        )
    paired = all(complement_of(s, n_random, complements) in shadow_set for s in shadows)
    return "pairs" if paired else "independent"


def fresh_mask(n_population: int, pkeep: float, seed: int, existing: np.ndarray) -> np.ndarray:
    """A Bernoulli(pkeep) membership row that is no row of ``existing`` nor any row's
    complement (DP-sweep targets: members no shadow shares, docs/method.md: Training recipes)."""
    row = np.random.default_rng([seed, 0x5EED]).random(n_population) < pkeep
    for i, r in enumerate(np.asarray(existing, dtype=bool)):
        if np.array_equal(r, row) or np.array_equal(~r, row):
            raise ValueError(
                f"dp_sweep.mask_seed: the fresh mask equals mask row {i} or its complement"
            )
    return row


def first_m_members(n_population: int, m: int, seed: int) -> np.ndarray:
    """Membership of the first ``m`` samples of a seeded permutation of the population
    (dataset-size sweep: the same members for every seed of a given m, nested across m)."""
    if not 0 < m <= n_population:
        raise ValueError(f"size_sweep.sizes: {m} is outside 1..{n_population} (the population)")
    perm = np.random.default_rng(seed).permutation(n_population)
    members = np.zeros(n_population, dtype=bool)
    members[perm[:m]] = True
    return members
