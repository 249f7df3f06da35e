"""Sweeps: membership of sweep targets, seeds, and the targets.csv / metrics.csv contract;
a small end-to-end `snakemake dp_sweep size_sweep` on digits (slow)."""

from pathlib import Path

import numpy as np
import pytest

from curvmia.io import save_npz
from curvmia.masks import first_m_members, fresh_mask, make_masks
from curvmia.scores import F32_FEATURES, FEATURES
from curvmia.sweeps import model_id, sweep_metrics, sweep_seed, targets_frame

REPO = Path(__file__).resolve().parents[1]
METRIC_COLS = [
    "attack",
    "target",
    "auroc",
    "bal_acc_paper",
    "bal_acc_best",
    "n_members",
    "n_nonmembers",
    "n_nan_scores",
    "n_inf_scores",
]


def test_size_members_are_nested_prefixes_of_one_permutation():
    a, b = first_m_members(100, 10, 3), first_m_members(100, 40, 3)
    assert a.sum() == 10 and b.sum() == 40 and np.all(b[a])
    assert not np.array_equal(a, first_m_members(100, 10, 4))
    with pytest.raises(ValueError, match="size_sweep.sizes"):
        first_m_members(100, 101, 0)


def test_fresh_dp_mask_is_no_shadow_row_nor_complement():
    masks = make_masks(500, 4, 0.5, 0, True)
    row = fresh_mask(500, 0.5, 1, masks)
    assert 200 < row.sum() < 300
    assert not any(np.array_equal(row, r) for r in masks)
    with pytest.raises(ValueError, match="dp_sweep.mask_seed"):
        fresh_mask(500, 0.5, 1, np.stack([~row]))


def test_sweep_seeds_and_ids_are_distinct():
    seeds = {sweep_seed(0, s, v, k) for s in ("dp", "size") for v in (1, 2.5, 500) for k in (0, 1)}
    assert len(seeds) == 12
    assert model_id("dp", 1, 0) == "eps1.0_seed0" and model_id("size", 500.0, 1) == "m500_seed1"


def _scores(path, loss, rng):
    n = len(loss)
    feats = {f: rng.random((n, 2)) * 0.8 + 0.1 for f in FEATURES}  # probabilities in [0, 1]
    feats["loss"] = np.stack([loss, loss], 1)
    feats.update({f: rng.random((n, 2)).astype(np.float32) for f in F32_FEATURES})
    feats["loss_f32"] = feats["loss"].astype(np.float32)
    save_npz(path, **feats, **{f"test_{f}": v[:5] for f, v in feats.items()})


def test_sweep_metrics_contract(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    shadow_in = make_masks(n, 3, 0.5, 0, True)
    for i in range(6):
        _scores(tmp_path / f"s{i}.npz", rng.random(n), rng)
    rows = []
    for value, flip in ((100, False), (50, True)):
        members = first_m_members(n, value, 0)
        np.save(tmp_path / f"m{value}.npy", members)
        # members have loss 0, non-members 1 -> Yeom AUROC 1; reversed -> 0
        loss = np.where(members ^ flip, 0.0, 1.0)
        _scores(tmp_path / f"t{value}.npz", loss, rng)
        rows.append(
            {
                "sweep": "size",
                "value": value,
                "seed": 0,
                "model": f"m{value}_seed0",
                "scores": str(tmp_path / f"t{value}.npz"),
                "members": str(tmp_path / f"m{value}.npy"),
                "test_acc": 0.5,
            }
        )
    targets = targets_frame(rows)
    assert targets["value"].dtype.kind == "i" and list(targets.columns) == [
        "sweep",
        "value",
        "seed",
        "model",
        "scores",
        "members",
        "test_acc",
    ]
    df = sweep_metrics(
        targets,
        [str(tmp_path / f"s{i}.npz") for i in range(6)],
        shadow_in,
        rng.integers(0, 3, n),
        {"yeom": {"name": "yeom"}, "curv_nll": {"name": "curv_nll"}},
        fprs=[0.01],
        n_boot=0,
        seed=0,
    )
    assert list(df.columns) == METRIC_COLS + ["tpr@0.01", "tpr_strict@0.01", "value", "seed"]
    yeom = df[df.attack == "yeom"].set_index("value")
    assert yeom.loc[100, "auroc"] == 1.0 and yeom.loc[50, "auroc"] == 0.0
    assert yeom.loc[100, "n_members"] == 100 and yeom.loc[50, "n_nonmembers"] == 150
    # random curvature features carry no signal
    assert df[df.attack == "curv_nll"]["auroc"].between(0.3, 0.7).all()


def test_sweep_members_are_the_documented_seeded_draws():
    """first_m_members: the first m of numpy's seeded permutation; fresh_mask: Bernoulli(pkeep)
    from numpy's generator on [seed, 0x5EED] (both as curvmia.masks documents them)."""
    perm = np.random.default_rng(3).permutation(100)
    want = np.zeros(100, bool)
    want[perm[:10]] = True
    np.testing.assert_array_equal(first_m_members(100, 10, 3), want)
    assert first_m_members(5, 5, 0).all() and first_m_members(5, 5, 0).dtype == bool
    assert first_m_members(100, 1, 3).sum() == 1 and first_m_members(100, 1, 3)[perm[0]]
    with pytest.raises(ValueError, match=r"size_sweep.sizes: 0 is outside 1..100"):
        first_m_members(100, 0, 0)
    masks = make_masks(50, 2, 0.5, 0, True)
    row = fresh_mask(50, 0.3, 7, masks)
    np.testing.assert_array_equal(row, np.random.default_rng([7, 0x5EED]).random(50) < 0.3)
    # equal to a row, or to a row's complement: refused, naming the row
    with pytest.raises(ValueError, match=r"dp_sweep.mask_seed: .* equals mask row 1 or its"):
        fresh_mask(50, 0.3, 7, np.stack([masks[0], row]))
    with pytest.raises(ValueError, match=r"equals mask row 2 or its complement"):
        fresh_mask(50, 0.3, 7, np.stack([masks[0], masks[1], ~row]))
    # a 0/1 integer mask set is read as membership: ~ complements it as a bool row
    with pytest.raises(ValueError, match=r"equals mask row 1 or its complement"):
        fresh_mask(50, 0.3, 7, np.stack([masks[0], ~row]).astype(np.uint8))
