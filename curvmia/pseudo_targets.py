"""Shadows as pseudo-targets (docs/method.md: Realistic audit metrics): each kept shadow in
turn plays the target, scored by the same attack with the other shadows, minus it and minus
its complement, as references.  Real targets never enter.  Their scores and their own
membership give label-free thresholds for the real targets.

``shadow`` maps feature names to (P, N, Q) arrays (and ``test_<name>`` to (P, Nz, Q)),
``shadow_in`` is (P, N) bool, ``complement`` (P,) the position of each shadow's complement
within the same P shadows, or -1 where it has none (independent layout, or excluded by
health).
"""

from __future__ import annotations

import numpy as np

from .attacks import ATTACKS


def complement_positions(rows: list[int], n_random: int, complements: bool) -> np.ndarray:
    """(P,) position of each row's complement among ``rows`` (-1: none among them)."""
    pos = {r: i for i, r in enumerate(rows)}
    out = np.full(len(rows), -1, dtype=np.int64)
    if complements:
        for i, r in enumerate(rows):
            c = r + n_random if r < n_random else r - n_random
            out[i] = pos.get(c, -1)
    return out


def reference_positions(complement: np.ndarray) -> list[np.ndarray]:
    """For each pseudo-target p, the positions of its references: all but p and its
    complement."""
    n = len(complement)
    return [np.array([j for j in range(n) if j != p and j != complement[p]]) for p in range(n)]


def _params(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in ("name", "label")}


def pseudo_target_scores_reference(
    spec: dict,
    shadow: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    labels: np.ndarray,
    complement: np.ndarray,
) -> np.ndarray:
    """(P, N) scores of every pseudo-target: the attack function itself run once per
    pseudo-target on its reduced reference set (the definition; slow)."""
    fn = ATTACKS[spec["name"]]
    shadow_in = np.asarray(shadow_in, dtype=bool)
    out = []
    for p, refs in enumerate(reference_positions(np.asarray(complement))):
        target = {f: v[p] for f, v in shadow.items()}
        ref_feats = {f: v[refs] for f, v in shadow.items()}
        out.append(fn(target, ref_feats, shadow_in[refs], labels=labels, **_params(spec)))
    return np.stack(out).astype(np.float64)


def pseudo_target_scores(
    spec: dict,
    shadow: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    labels: np.ndarray,
    complement: np.ndarray,
) -> np.ndarray:
    """(P, N) scores of every pseudo-target, equal to
    :func:`pseudo_target_scores_reference` (rtol 1e-9, same NaN pattern)."""
    return pseudo_target_scores_reference(spec, shadow, shadow_in, labels, complement)
