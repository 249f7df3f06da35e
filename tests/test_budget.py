"""The shadow budget (curvmia/budget.py; docs/method.md: Shadow budget)."""

import math

import numpy as np
import pandas as pd
import pytest

from curvmia.attacks import ATTACKS, run_attack
from curvmia.budget import (
    COLUMNS,
    ONLINE,
    budget_frame,
    budget_ks,
    budget_summary,
    budget_units,
    draw_subsets,
    fpr_level,
)
from curvmia.metric_frames import metrics_frame
from curvmia.metrics import auroc, summarize

N_RANDOM = 6
SPECS = [
    {"name": "curv_nll", "variant": "paper"},
    {"name": "lira_online", "variant": "clean", "label": "lira_clean"},
    {"name": "curv_nll", "variant": "clean", "label": "curv_nll_clean"},
    {"name": "yeom"},
    {"name": "watson"},
    {"name": "song"},
    {"name": "rmia_online"},
]


def synthetic(n=300, n_models=2 * N_RANDOM, complements=True, seed=0):
    """Features with a membership signal (members: lower curvature and loss, higher
    confidence); rows r and r + N_RANDOM are complements when ``complements``."""
    rng = np.random.default_rng(seed)
    if complements:
        half = rng.random((n_models // 2, n)) < 0.5
        masks = np.concatenate([half, ~half])
    else:
        masks = rng.random((n_models, n)) < 0.5
    feats = {}
    for prefix, nn, inn in (("", n, masks), ("test_", 200, np.zeros((n_models, 200), bool))):
        b = rng.normal(0, 1.5, nn)[None, :, None]
        conf = b + 1.0 * inn[:, :, None] + rng.normal(0, 1, (n_models, nn, 2))
        p = 1 / (1 + np.exp(-conf))
        f = {"curv_zo": np.exp(-conf), "phi": conf, "phi_max": conf, "p_true": p, "p_max": p}
        f |= {"loss": -np.log(p), "mentr": -np.log(p) * (1 - p)}
        f |= {k + "_f32": f[k].astype(np.float32) for k in ("loss", "mentr", "p_max")}
        feats |= {prefix + k: v for k, v in f.items()}
    return feats, masks, rng.integers(0, 4, n)


def layout(feats, masks, shadows, targets):
    shadow = {f: v[shadows] for f, v in feats.items()}
    tgts = [{f: v[t] for f, v in feats.items()} for t in targets]
    return tgts, masks[targets], shadow, masks[shadows]


PAIRS_SHADOWS = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # five whole complement pairs
PAIRS_TARGETS = [5, 11]


@pytest.fixture(scope="module")
def pairs():
    feats, masks, labels = synthetic()
    tgts, t_in, shadow, s_in = layout(feats, masks, PAIRS_SHADOWS, PAIRS_TARGETS)
    df = budget_frame(
        SPECS,
        tgts,
        t_in,
        shadow,
        s_in,
        PAIRS_SHADOWS,
        labels,
        n_random=N_RANDOM,
        complements=True,
        ks=None,
        draws=3,
        seed=7,
        fprs=[0.1, 0.01],
    )
    return df, (feats, masks, labels)


def test_units_are_whole_pairs_in_the_pairs_layout_else_single_rows():
    units = budget_units(PAIRS_SHADOWS, N_RANDOM, True)
    assert [sorted(PAIRS_SHADOWS[i] for i in u) for u in units] == [
        [0, 6],
        [1, 7],
        [2, 8],
        [3, 9],
        [4, 10],
    ]
    # a shadow without its complement (e.g. excluded by health): every row its own unit
    assert [list(u) for u in budget_units([0, 1, 6], N_RANDOM, True)] == [[0], [1], [2]]
    assert [list(u) for u in budget_units([0, 1, 2], N_RANDOM, False)] == [[0], [1], [2]]


def test_default_k_list_is_powers_of_two_plus_all():
    assert budget_ks(None, 8) == [1, 2, 4, 8]
    assert budget_ks(None, 5) == [1, 2, 4, 5]
    assert budget_ks(None, 64) == [1, 2, 4, 8, 16, 32, 64]
    assert budget_ks(None, 1) == [1]
    assert budget_ks([4, 1, 4], 5) == [1, 4]
    with pytest.raises(ValueError, match=r"metrics.budget_ks: \[6\] outside 1..5"):
        budget_ks([2, 6], 5)


@pytest.mark.parametrize(
    "n,k,draws,count", [(8, 1, 5, 5), (4, 2, 10, 6), (5, 5, 5, 1), (5, 2, 10, 10)]
)
def test_exact_subset_counts_distinct_and_seeded(n, k, draws, count):
    subs = draw_subsets(n, k, draws, seed=3)
    assert len(subs) == count == min(draws, math.comb(n, k))
    assert len({tuple(s) for s in subs}) == count  # distinct
    assert all(len(s) == k and len(set(s)) == k and 0 <= min(s) and max(s) < n for s in subs)
    again = draw_subsets(n, k, draws, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(subs, again, strict=True))


def test_another_seed_draws_other_subsets():
    a = [tuple(s) for s in draw_subsets(16, 4, 5, seed=0)]
    b = [tuple(s) for s in draw_subsets(16, 4, 5, seed=1)]
    assert a != b


def test_pairs_kept_whole_and_row_counts(pairs):
    df, _ = pairs
    assert sorted(df.n_refs.unique()) == [1, 2, 4, 5]
    per_k = df[df.attack == "yeom"].groupby("n_refs").size().to_dict()
    assert per_k == {1: 3, 2: 3, 4: 3, 5: 1}  # C(5, 4) = 5 > 3 draws; K = all: one subset
    for _, r in df.iterrows():
        rows = [int(x) for x in r.rows.split()]
        assert r.n_models == len(rows) == 2 * r.n_refs
        for x in rows:  # every row's complement is in the same subset
            assert (x + N_RANDOM if x < N_RANDOM else x - N_RANDOM) in rows
    # the same subsets for every attack
    subsets = df.groupby("attack").rows.apply(tuple)
    assert subsets.nunique() == 1


def test_csv_columns_and_one_fpr_level(pairs, tmp_path):
    df, _ = pairs
    df.to_csv(tmp_path / "budget.csv", index=False)
    back = pd.read_csv(tmp_path / "budget.csv")
    assert (
        list(back.columns[:6])
        == COLUMNS
        == [
            "attack",
            "n_refs",
            "draw",
            "auroc",
            "tpr",
            "fpr_level",
        ]
    )
    # 300 samples: about 150 non-members per target and shadow support 0.1, not 0.01
    assert set(back.fpr_level) == {0.1}
    assert len(back) == len(SPECS) * (3 + 3 + 3 + 1)


def test_k_all_auroc_equals_the_main_metric_exactly(pairs):
    df, (feats, masks, labels) = pairs
    tgts, t_in, shadow, s_in = layout(feats, masks, PAIRS_SHADOWS, PAIRS_TARGETS)
    full = df[df.n_refs == 5].set_index("attack")
    for spec in SPECS:
        scores, is_member = run_attack(spec, tgts, shadow, s_in, t_in, labels)
        per_target = [auroc(s, m) for s, m in zip(scores, is_member)]
        main = [
            summarize(s, m, fprs=[0.1], n_boot=0, seed=0)["auroc"]
            for s, m in zip(scores, is_member)
        ]
        assert per_target == main
        label = spec.get("label", spec["name"])
        assert full.loc[label, "auroc"] == np.mean(per_target)  # exactly
        # metrics.csv's mean row (curvmia/metric_frames.py), exactly
        res = {"scores": scores, "is_member": is_member, "targets": np.array(PAIRS_TARGETS)}
        mf = metrics_frame({label: res}, fprs=[0.1], n_boot=0, seed=0)
        assert full.loc[label, "auroc"] == mf[mf.target == "mean"].auroc.iloc[0]
        assert full.loc[label, "n_no_in_shadow"] == 0 and full.loc[label, "n_no_out_shadow"] == 0


def _threshold_by_hand(scores, is_member, alpha):
    """Smallest t with at most ⌊α·n⌋ of the n non-members scored ≥ t (NaN never ≥ t)."""
    non = [s for s, m in zip(scores, is_member) if not m]
    k = math.floor(alpha * len(non) + 1e-9)
    finite = sorted((s for s in non if not math.isnan(s)), reverse=True)
    return -math.inf if k >= len(finite) else float(np.nextafter(finite[k], math.inf))


def test_labelfree_tpr_by_hand_for_one_draw(pairs):
    """Watson at K = 2 pairs, draw 0: each of the 4 references is a pseudo-target scored by
    the one other pair; median of their thresholds at 10%; achieved TPR averaged by loops."""
    df, (feats, masks, labels) = pairs
    row = df[(df.attack == "watson") & (df.n_refs == 2) & (df.draw == 0)].iloc[0]
    rows = [int(x) for x in row.rows.split()]
    thresholds = []
    for p in rows:
        comp = p + N_RANDOM if p < N_RANDOM else p - N_RANDOM
        refs = [r for r in rows if r not in (p, comp)]
        target = {f: v[p] for f, v in feats.items()}
        ref = {f: v[refs] for f, v in feats.items()}
        s = ATTACKS["watson"](target, ref, masks[refs], labels=labels)
        thresholds.append(_threshold_by_hand(s, masks[p], 0.1))
    thr = float(np.median(thresholds))
    tprs, fprs = [], []
    shadow = {f: v[rows] for f, v in feats.items()}
    for t in PAIRS_TARGETS:
        s = ATTACKS["watson"]({f: v[t] for f, v in feats.items()}, shadow, masks[rows])
        mem = masks[t]
        tprs.append(sum(1 for x, m in zip(s, mem) if m and x >= thr) / mem.sum())
        fprs.append(sum(1 for x, m in zip(s, mem) if not m and x >= thr) / (~mem).sum())
    assert row.tpr == pytest.approx(np.mean(tprs), abs=1e-12)
    assert row.fpr == pytest.approx(np.mean(fprs), abs=1e-12)
    assert 0.0 < row.tpr < 1.0


def test_one_pair_online_auroc_but_no_labelfree_tpr(pairs):
    """K = 1 pair: the targets have an IN and an OUT reference of every sample, the
    pseudo-targets none (a pair minus a model and its complement is empty)."""
    df, _ = pairs
    k1 = df[df.n_refs == 1]
    # curv_nll clean: one model per side has zero variance, every score NaN: no result
    nll = k1.attack == "curv_nll_clean"
    assert (k1[nll].nan_share == 1).all() and k1[nll].auroc.isna().all()
    assert k1[nll].note.str.contains("every target score is NaN").all()
    assert k1[~nll].auroc.notna().all() and k1.tpr.isna().all()
    assert k1[~nll].note.str.contains("pseudo-target keeps 0 reference models").all()
    # K = 2 pairs: a pseudo-target keeps one model per side, curv_nll clean scores nothing
    k2 = df[df.n_refs == 2]
    nll = k2.attack == "curv_nll_clean"
    assert k2[~nll].tpr.notna().all() and (k2[~nll].note.fillna("") == "").all()
    assert k2[nll].auroc.notna().all() and k2[nll].tpr.isna().all()
    assert k2[nll].note.str.contains("every pseudo-target score is NaN").all()


@pytest.fixture(scope="module")
def independent():
    feats, masks, labels = synthetic(n_models=8, complements=False, seed=1)
    shadows, targets = [0, 1, 2, 3, 4, 5], [6, 7]
    tgts, t_in, shadow, s_in = layout(feats, masks, shadows, targets)
    df = budget_frame(
        SPECS,
        tgts,
        t_in,
        shadow,
        s_in,
        shadows,
        labels,
        n_random=8,
        complements=False,
        ks=[1, 2, 3],
        draws=4,
        seed=0,
        fprs=[0.1],
    )
    return df, masks


def test_online_attacks_below_two_models_are_nan_and_flagged(independent):
    df, _ = independent
    k1 = df[df.n_refs == 1].set_index(["attack", "draw"])
    for label, name in [("curv_nll", "curv_nll"), ("lira_clean", "lira_online")]:
        assert name in ONLINE
        assert k1.loc[label].auroc.isna().all() and k1.loc[label].tpr.isna().all()
        assert k1.loc[label].note.str.contains("needs an IN and an OUT reference").all()
    for label in ("yeom", "watson", "song", "rmia_online"):
        assert k1.loc[label].auroc.notna().all()  # one reference model suffices
        assert k1.loc[label].tpr.isna().all()  # a pseudo-target has no reference left
    # K = 2 models: the online pseudo-targets keep one reference, too few; others run
    k2 = df[df.n_refs == 2].set_index("attack")
    assert k2.loc["curv_nll"].tpr.isna().all() and k2.loc["curv_nll"].auroc.notna().all()
    assert k2.loc["watson"].tpr.notna().all()
    # three models: every sample has at most one on a side; curv_nll clean's zero
    # variance makes every score NaN (no result), the other attacks run
    k3 = df[df.n_refs == 3]
    nll = k3.attack == "curv_nll_clean"
    assert k3[~nll].tpr.notna().all() and k3[nll].auroc.isna().all()
    assert (k3[nll].nan_share == 1).all()


def test_coverage_counted_per_draw(independent):
    df, masks = independent
    for _, r in df.iterrows():
        rows = [int(x) for x in r.rows.split()]
        no_in = sum(1 for j in range(masks.shape[1]) if not any(masks[x, j] for x in rows))
        no_out = sum(1 for j in range(masks.shape[1]) if all(masks[x, j] for x in rows))
        assert (r.n_no_in_shadow, r.n_no_out_shadow) == (no_in, no_out)
    assert df[df.n_refs == 1].n_no_in_shadow.gt(0).all()  # one model: half the samples


def test_online_set_matches_what_the_attacks_need():
    """With one OUT-only reference model, exactly the ONLINE attacks score nothing."""
    feats, masks, labels = synthetic(n=100, n_models=3, complements=False, seed=2)
    target = {f: v[0] for f, v in feats.items()}
    ref = {f: v[[1]] for f, v in feats.items()}
    for name, fn in ATTACKS.items():
        s = fn(target, ref, np.zeros((1, 100), bool), labels=labels)
        assert np.isnan(s).all() == (name in ONLINE), name


def test_fpr_level_is_the_lowest_supported():
    assert fpr_level([0.1, 0.01, 0.001], 1000) == 0.01
    assert fpr_level([0.01, 0.1], 999) == 0.1
    assert np.isnan(fpr_level([0.01], 999))


def test_summary_mean_and_spread(pairs):
    df, _ = pairs
    s = budget_summary(df).set_index(["attack", "n_refs"])
    w = df[(df.attack == "watson") & (df.n_refs == 2)].auroc.tolist()
    mean = sum(w) / len(w)
    assert s.loc[("watson", 2), "auroc"] == pytest.approx(mean)
    sd = math.sqrt(sum((x - mean) ** 2 for x in w) / len(w))
    assert s.loc[("watson", 2), "auroc_std"] == pytest.approx(sd)
    assert s.loc[("watson", 5), "auroc_std"] == 0.0 and s.loc[("watson", 5), "draws"] == 1


def test_benchmark_runs_at_tiny_size():
    """benchmarks/budget.py (the paper-size cost) cannot rot unseen."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "benchmarks" / "budget.py"), "--samples", "300",
           "--test-samples", "100", "--shadows", "4", "--draws", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "K =   4: 1 draws" in run.stdout and "target 900 s on 2 cores, ratio" in run.stdout
