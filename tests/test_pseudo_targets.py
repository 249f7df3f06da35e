"""The fast pseudo-target scores equal the definition (the attack run on each reduced
reference set, pseudo_target_scores_reference) for every attack, variant and setting of
the configs, on both membership layouts, with health-excluded complements, NaN features,
samples left without an IN reference, and near-constant features where a one-pass
variance update would lose every digit."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from curvmia.attacks import ATTACKS, VARIANTS, attack_params
from curvmia.pseudo_targets import (
    complement_positions,
    pseudo_target_scores,
    pseudo_target_scores_reference,
)

REPO = Path(__file__).resolve().parents[1]
N_PAIRS = 6  # 12 shadows: rows 0–5 random, 6–11 their complements


def features(masks, n_z=150, seed=0):
    """Every feature the attacks read, (P, N, 2) and test_ (P, n_z, 2), from a per-sample
    difficulty plus noise; members more confident."""
    rng = np.random.default_rng(seed)
    n_sh, n = masks.shape
    out = {}
    for prefix, nn, inn in (("", n, masks), ("test_", n_z, np.zeros((n_sh, n_z), bool))):
        conf = rng.normal(0, 1.5, nn)[None, :, None] + rng.normal(0, 1, (n_sh, nn, 2))
        conf += 0.7 * inn[:, :, None]
        p = 1 / (1 + np.exp(-conf))
        f = {"phi": conf, "phi_max": conf + 0.3, "p_true": p, "p_max": np.maximum(p, 0.5)}
        f |= {"loss": -np.log(p), "mentr": -np.log(p) * (1 - p), "curv_zo": np.exp(-conf)}
        f["curv_hutch"] = f["curv_zo"] * rng.normal(1, 1, conf.shape)  # a trace: may be < 0
        f["curv_hutch_sq"] = f["curv_hutch"] ** 2
        for k in ("loss", "mentr", "p_true", "p_max"):
            f[k + "_f32"] = f[k].astype(np.float32)
        out |= {prefix + k: v for k, v in f.items()}
    return out


def layout(kind, n=300, seed=0):
    """(masks, complement) of the 12 pairs-layout shadows, the 12 independent ones, or the
    pairs with rows 1 and 8 excluded by health (their complements 7 and 2 left alone)."""
    rng = np.random.default_rng(seed)
    if kind == "independent":
        masks = rng.random((2 * N_PAIRS, n)) < 0.5
        return masks, complement_positions(list(range(2 * N_PAIRS)), N_PAIRS, False)
    half = rng.random((N_PAIRS, n)) < 0.5
    masks = np.concatenate([half, ~half])
    rows = list(range(2 * N_PAIRS))
    if kind == "health":
        rows = [r for r in rows if r not in (1, 8)]
    return masks[rows], complement_positions(rows, N_PAIRS, True)


def variant_specs():
    """Every attack in both variants where it has two, and the config settings."""
    specs = []
    for name in ATTACKS:
        params = attack_params(name)
        variants = VARIANTS if "variant" in params else (None,)
        for v in variants:
            specs.append({"name": name} | ({"variant": v} if v else {}))
    specs += [
        {"name": "curv_lr", "variant": "paper", "unit_variance": True},
        {"name": "curv_lr", "variant": "clean", "unit_variance": True},
        {"name": "carlini_paper", "form": "nll"},
        {"name": "lira_online", "variant": "clean", "center": "mean"},
        {"name": "lira_online", "variant": "paper", "center": "median", "fix_variance": True},
        {"name": "lira_offline", "variant": "clean", "fix_variance": True},
        {"name": "lira_offline", "variant": "paper", "center": "median"},
        {"name": "ye", "variant": "clean", "alpha": 0.3},
        {"name": "rmia_offline", "a": 0.6, "gamma": 2.0},
        {"name": "rmia_online", "gamma": 0.5},
    ]
    for path in sorted((REPO / "config").glob("*.yaml")):
        for spec in (yaml.safe_load(path.read_text()) or {}).get("attacks") or []:
            spec = {k: v for k, v in spec.items() if k != "label"}
            if spec not in specs:
                specs.append(spec)
    return specs


SPECS = variant_specs()


def spec_id(spec):
    return ",".join(str(v) for v in spec.values())


def check_equal(spec, feats, masks, labels, comp):
    fast = pseudo_target_scores(spec, feats, masks, labels, comp)
    ref = pseudo_target_scores_reference(spec, feats, masks, labels, comp)
    assert fast.shape == ref.shape == masks.shape and fast.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, rtol=1e-9, equal_nan=True)
    return fast


def test_the_specs_cover_every_attack_and_the_config_settings():
    names = {s["name"] for s in SPECS}
    assert names == set(ATTACKS)
    assert {"name": "curv_nll", "variant": "paper", "feature": "curv_hutch_sq"} in SPECS
    assert {"name": "lira_online", "variant": "paper", "fix_variance": True} in SPECS
    assert {"name": "curv_lr", "variant": "paper", "unit_variance": True} in SPECS
    assert {"name": "carlini_paper", "form": "nll"} in SPECS
    assert {"name": "yeom", "loss_query": 1} in SPECS


@pytest.mark.parametrize("kind", ["pairs", "independent", "health"])
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_fast_scores_equal_the_definition(spec, kind):
    masks, comp = layout(kind)
    labels = np.random.default_rng(1).integers(0, 10, masks.shape[1])
    labels[labels == 7] = 8  # a class without samples: its threshold is −inf
    check_equal(spec, features(masks), masks, labels, comp)


def no_reference_layout(n=300, seed=2):
    """Independent layout where sample 0 is IN only for shadow 3, sample 1 IN for none,
    sample 2 OUT only for shadow 5, sample 3 IN only for shadow 4 and its complement
    (the pairs' position 10 plays it)."""
    masks, _ = layout("independent", n, seed)
    masks[:, :4] = False
    masks[3, 0] = True
    masks[:, 2] = True
    masks[5, 2] = False
    masks[[4, 10], 3] = True
    comp = np.full(len(masks), -1)
    comp[4], comp[10] = 10, 4
    return masks, comp


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # RMIA's reference, no z value
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_nan_features_and_samples_without_a_reference(spec):
    masks, comp = no_reference_layout()
    feats = features(masks, seed=3)
    rng = np.random.default_rng(3)
    for v in feats.values():
        v[:, 8:][rng.random(v[:, 8:].shape) < 0.04] = np.nan  # 4% NaN beyond sample 7
    for k in ("phi", "phi_max", "loss_f32", "curv_zo", "p_true"):
        feats[k][:, 5, 0] = np.nan  # a (sample, query) with no value at all
        feats[k][masks[:, 6], 6, 1] = np.nan  # one with no IN value
    labels = np.random.default_rng(4).integers(0, 10, masks.shape[1])
    fast = check_equal(spec, feats, masks, labels, comp)
    paper = spec.get("variant", "paper") == "paper"  # finite with a single reference
    if spec["name"] in ("curv_nll", "lira_online", "sablayrolles") and paper:  # IN stats
        assert np.isnan(fast[3, 0]) and not np.isnan(fast[2, 0])  # no IN reference left
        assert np.isnan(fast[4, 3]) and np.isnan(fast[10, 3])
        assert np.isnan(fast[:, 1]).all()
    if spec["name"] in ("watson", "ye", "lira_offline", "rmia_offline"):  # OUT stats
        assert np.isnan(fast[5, 2]) and not np.isnan(fast[4, 2])


def naive_leave_out_var(x, side, drop):
    """The one-pass update a fast form must not use: (Σx² − (Σx)²/n)/n over all shadows,
    minus the left-out ones' shares."""
    keep = side.copy()
    n = keep.sum(0) - keep[drop].sum(0)
    s1 = np.where(keep, x, 0).sum(0) - np.where(keep[drop], x[drop], 0).sum(0)
    s2 = np.where(keep, x * x, 0).sum(0) - np.where(keep[drop], x[drop] ** 2, 0).sum(0)
    return (s2 - s1 * s1 / n) / n


@pytest.mark.parametrize(
    "spec",
    [s for s in SPECS if s["name"] in ("curv_nll", "curv_lr", "lira_online", "lira_offline")]
    + [s for s in SPECS if s["name"] in ("sablayrolles", "watson", "ye")],
    ids=spec_id,
)
def test_tiny_variance_about_a_large_offset(spec):
    """Features 1e6 + 1e-4·noise (log curvature 13.8 + 1e-10·noise), and one column where
    a single shadow is an outlier: leaving it out leaves almost no variance."""
    masks, comp = layout("pairs", n=200, seed=5)
    rng = np.random.default_rng(6)
    feats = features(masks, seed=6)
    for k in ("curv_zo", "curv_hutch", "phi", "phi_max", "loss", "loss_f32"):
        v = 1e6 + 1e-4 * rng.normal(0, 1, feats[k].shape)
        v[0, 7, :] = 1e6 + 3.0  # shadow 0 the outlier of sample 7
        feats[k] = v.astype(feats[k].dtype)
    labels = rng.integers(0, 10, masks.shape[1])
    check_equal(spec, feats, masks, labels, comp)
    # the case is a real one: a one-pass update misses the left-out variance by far
    refs = [s for s in range(12) if s not in (0, 6)]  # pseudo-target 0, its complement 6
    x, out = feats["phi"][refs, :, 0], ~masks[refs]
    exact = np.array([np.var(x[out[:, j], j]) for j in range(x.shape[1])])
    naive = naive_leave_out_var(feats["phi"][:, :, 0], ~masks, [0, 6])
    assert np.nanmax(np.abs(naive - exact) / exact) > 1e-3


def test_complement_positions():
    # pairs layout, 4 random rows (0–3) and their complements (4–7); rows 1 and 6 excluded
    rows = [0, 2, 3, 4, 5, 7]
    np.testing.assert_array_equal(complement_positions(rows, 4, True), [3, -1, 5, 0, -1, 2])
    np.testing.assert_array_equal(complement_positions(rows, 4, False), [-1] * 6)
    # every row and its complement kept, in another order
    np.testing.assert_array_equal(complement_positions([5, 1, 3, 7], 4, True), [1, 0, 3, 2])
    assert complement_positions([], 4, True).shape == (0,)


def test_bad_parameters_fail_as_the_attack_does():
    masks, comp = layout("pairs", n=50)
    feats, labels = features(masks, n_z=20), np.zeros(50, int)
    with pytest.raises(ValueError, match="variant must be one of"):
        pseudo_target_scores({"name": "curv_nll", "variant": "x"}, feats, masks, labels, comp)
    with pytest.raises(ValueError, match="center must be"):
        spec = {"name": "lira_online", "center": "mode"}
        pseudo_target_scores(spec, feats, masks, labels, comp)
    with pytest.raises(ValueError, match="song: needs the samples' labels"):
        pseudo_target_scores({"name": "song"}, feats, masks, None, comp)
    with pytest.raises(ValueError, match="rmia: needs the test split"):
        no_z = {k: v for k, v in feats.items() if not k.startswith("test_")}
        pseudo_target_scores({"name": "rmia_online"}, no_z, masks, labels, comp)


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if s.get("fix_variance")] + [{"name": "curv_lr"}], ids=spec_id
)
def test_an_outlier_shadow_left_out(spec):
    """Shadow 0 lies 1e3 above the others (spread 1e-4 about 1): its share dominates every
    sum, so what remains once it is left out is a tiny difference of large sums."""
    masks, comp = layout("pairs", n=200, seed=7)
    feats = features(masks, seed=7)
    rng = np.random.default_rng(7)
    for k in ("phi", "phi_max", "curv_zo"):
        feats[k] = 1 + 1e-4 * rng.normal(0, 1, feats[k].shape)
        feats[k][0] += 1e3
    check_equal(spec, feats, masks, np.zeros(200, int), comp)


@pytest.mark.parametrize("kind", ["pairs", "independent"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_song_with_ties_and_runs_only_the_left_out_shadows_hold(kind, variant):
    """Mentr on a grid of six values (long runs of ties); in class 3 every IN value lies
    above every OUT one (no cut beats taking all: τ is the largest value), and shadow 0
    alone holds the class's lowest value, a run that vanishes when it is left out."""
    masks, comp = layout(kind, n=300, seed=8)
    feats = features(masks, seed=8)
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 5, masks.shape[1])
    grid = rng.integers(0, 6, feats["mentr"].shape) / 5
    three = labels == 3
    grid[:, three] = 1 + masks[:, three, None]
    grid[0, np.flatnonzero(three)[0]] = 0.5
    feats["mentr"], feats["mentr_f32"] = grid, grid.astype(np.float32)
    fast = check_equal({"name": "song", "variant": variant}, feats, masks, labels, comp)
    assert (fast[0, three] == 2 - grid[0, three, 0]).all()  # τ_3 = 2 without shadow 0
