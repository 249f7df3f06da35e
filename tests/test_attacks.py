"""Attacks on synthetic scores with known answers, hand-computed formulas, each paper quirk
pinned by its own test, RMIA against its paper's formula, and the docs/method.md: Membership
layouts null check."""

from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from curvmia.attacks import (
    ATTACKS,
    attack_params,
    check_attack_spec,
    class_thresholds,
    coverage,
    healthy_shadows,
    in_out_stats,
)
from curvmia.masks import complement_of, make_masks

FEATURES = ("curv_zo", "loss", "p_true", "p_max", "phi", "phi_max", "mentr")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def synthetic(n=4000, n_models=66, d=1.0, var_b=3.0, seed=0, signal=True, n_z=1000):
    """Per sample j a difficulty b_j ~ N(0, var_b); per model and query
    s = b_j ± d·in + ε, ε ~ N(0, 1).  Curvature is lower for members
    (log curv = b − d·in + ε), confidence higher (phi = b + d·in + ε), loss and
    modified entropy lower.  The test split (``test_*``, n_z samples) is OUT everywhere."""
    rng = np.random.default_rng(seed)
    masks = rng.random((n_models, n)) < 0.5
    feats = {}
    for prefix, nn, inn_mask in (("", n, masks), ("test_", n_z, None)):
        b = rng.normal(0, np.sqrt(var_b), nn)
        eps = rng.normal(0, 1, (n_models, nn, 2))
        inn = inn_mask[:, :, None].astype(float) if (signal and inn_mask is not None) else 0.0
        conf = b[None, :, None] + d * inn + eps
        f = {
            "curv_zo": np.exp(b[None, :, None] - d * inn + eps),
            "phi": conf,
            "phi_max": conf,
            "p_true": sigmoid(conf),
            "loss": -np.log(sigmoid(conf)),
            "mentr": -np.log(sigmoid(conf)),
        }
        f["p_max"] = f["p_true"]
        # the float32 values the paper variants read (scoring.variant: paper writes them)
        f.update({k + "_f32": f[k].astype(np.float32) for k in ("loss", "mentr", "p_max")})
        feats.update({prefix + k: v for k, v in f.items()})
    labels = rng.integers(0, 10, n)
    return feats, masks, labels


def split(feats, masks, target, shadows=None):
    shadows = [i for i in range(len(masks)) if i != target] if shadows is None else shadows
    t = {f: v[target] for f, v in feats.items()}
    s = {f: v[shadows] for f, v in feats.items()}
    return t, s, masks[shadows], masks[target]


# ------------------------------------------------------------------ known AUROCs on synthetic data


@pytest.mark.parametrize(
    "name,variant,expected,tol",
    [
        # with the per-example centre known, the sum over two queries separates by Φ(d)
        ("curv_nll", "paper", norm.cdf(1.0), 0.025),
        ("curv_nll", "clean", norm.cdf(1.0), 0.025),
        ("curv_lr", "clean", norm.cdf(1.0), 0.025),
        ("lira_online", "paper", norm.cdf(1.0), 0.025),
        ("lira_online", "clean", norm.cdf(1.0), 0.025),
    ],
)
def test_attack_recovers_known_auroc(name, variant, expected, tol):
    feats, masks, labels = synthetic()
    t, s, s_in, t_in = split(feats, masks, 0)
    score = ATTACKS[name](t, s, s_in, variant=variant)
    assert score.shape == (masks.shape[1],)
    assert abs(roc_auc_score(t_in, score) - expected) < tol


def test_curv_lr_paper_and_lira_offline_paper_beat_chance():
    feats, masks, _ = synthetic()
    t, s, s_in, t_in = split(feats, masks, 0)
    # paper Curv LR sums likelihoods over queries (not log-likelihoods): weaker than Φ(d)
    auc = roc_auc_score(t_in, ATTACKS["curv_lr"](t, s, s_in, variant="paper"))
    assert 0.70 < auc < norm.cdf(1.0) + 0.02
    # clean offline: mean over queries of log Φ(z), below the sufficient statistic's Φ(d)
    auc = roc_auc_score(t_in, ATTACKS["lira_offline"](t, s, s_in, variant="clean"))
    assert 0.78 < auc < norm.cdf(1.0) + 0.01
    # LiRA's released offline score is two-sided (distance from the OUT mean)
    auc = roc_auc_score(t_in, ATTACKS["lira_offline"](t, s, s_in, variant="paper"))
    assert 0.60 < auc < norm.cdf(1.0)


def test_calibrated_baselines_and_rmia_beat_yeom():
    """Per-example calibration removes the difficulty b: Watson / Sablayrolles / RMIA
    approach the one-query calibrated AUROC Φ(d/√2·√(1+1/32)...) ≫ Yeom's global cut."""
    feats, masks, labels = synthetic()
    t, s, s_in, t_in = split(feats, masks, 0)
    auc = {
        n: roc_auc_score(t_in, ATTACKS[n](t, s, s_in, labels=labels))
        for n in ("yeom", "watson", "sablayrolles", "ye", "song", "rmia_online", "rmia_offline")
    }
    # loss = softplus(−conf), monotone: a global cut on one query sees b (var 3) + ε
    assert abs(auc["yeom"] - norm.cdf(1.0 / np.sqrt(2 * 4.0))) < 0.02
    # −(loss − μ_out): the calibrated difference of one query; ≈ Φ(d/√2) up to the
    # nonlinearity of softplus
    for name in ("watson", "sablayrolles", "rmia_online", "rmia_offline"):
        assert auc[name] > 0.66, (name, auc)
    assert auc["ye"] > auc["yeom"] + 0.05 and auc["song"] > 0.55, auc


# ------------------------------------------------------------------ hand-computed small cases


def one_sample(values, is_in, feature="curv_zo"):
    x = np.asarray(values, dtype=float)[:, None, None]
    return {feature: x}, np.asarray(is_in, bool)[:, None]


def test_curv_nll_paper_formula_by_hand():
    # one sample, one query; shadows: IN values 1, 3 (mean 2, var 1), OUT 2, 6 (mean 4, var 4)
    shadow, s_in = one_sample(np.exp([1.0, 3.0, 2.0, 6.0]), [1, 1, 0, 0])
    target = {"curv_zo": np.exp(np.array([[2.5]]))}
    s = np.log(np.exp(2.5) + 1e-22)
    # paper: [(s − 4)² − (s − 2)²] / (2 · 1²)
    paper = ATTACKS["curv_nll"](target, shadow, s_in, variant="paper")
    assert paper[0] == pytest.approx(((s - 4) ** 2 - (s - 2) ** 2) / 2.0)
    # clean: log N(s; 2, 1) − log N(s; 4, 2)
    clean = ATTACKS["curv_nll"](target, shadow, s_in, variant="clean")
    assert clean[0] == pytest.approx(norm.logpdf(s, 2, 1) - norm.logpdf(s, 4, 2))
    # paper Curv LR: g(s; 2, V=1) / (g(s; 4, V=4) + 1e-22), V in the std's place
    lr = ATTACKS["curv_lr"](target, shadow, s_in, variant="paper")
    assert lr[0] == pytest.approx(norm.pdf(s, 2, 1) / (norm.pdf(s, 4, 4) + 1e-22))
    lr_unit = ATTACKS["curv_lr"](target, shadow, s_in, variant="paper", unit_variance=True)
    assert lr_unit[0] == pytest.approx(norm.pdf(s, 2, 1) / (norm.pdf(s, 4, 1) + 1e-22))
    lr_clean = ATTACKS["curv_lr"](target, shadow, s_in, variant="clean")
    assert lr_clean[0] == pytest.approx(norm.logpdf(s, 2, 1) - norm.logpdf(s, 4, 2))


def test_loss_baselines_by_hand():
    # shadow losses of one sample: IN 1, 3 (mean 2), OUT 5, 9 (mean 7); target loss 4
    loss = np.array([1.0, 3.0, 5.0, 9.0])
    shadow = {"loss_f32": np.stack([loss, loss + 100], -1)[:, None, :]}  # query 1 differs
    s_in = np.array([[1], [1], [0], [0]], bool)
    target = {"loss_f32": np.array([[4.0, 104.0]])}
    assert ATTACKS["yeom"](target, shadow, s_in)[0] == -4.0
    assert ATTACKS["sablayrolles"](target, shadow, s_in)[0] == pytest.approx(0.5)
    assert ATTACKS["watson"](target, shadow, s_in)[0] == pytest.approx(3.0)
    # Ye: α-quantile of OUT losses {5, 9} with linear interpolation
    assert ATTACKS["ye"](target, shadow, s_in, alpha=0.0)[0] == pytest.approx(1.0)
    assert ATTACKS["ye"](target, shadow, s_in, alpha=0.25)[0] == pytest.approx(2.0)
    assert ATTACKS["ye"](target, shadow, s_in)[0] == pytest.approx(-(4 - (5 + 1e-4 * 4)))


@pytest.mark.parametrize("name", ["yeom", "sablayrolles", "watson", "ye", "song"])
def test_loss_query_selects_the_query(name):
    # docs/method.md: Estimators: the paper's code read the flip (query 1) on CIFAR: loss_query
    # reproduces it
    feats, masks, labels = synthetic(n=300, n_models=9)
    t, s, s_in, _ = split(feats, masks, 0)
    q0 = ATTACKS[name](t, s, s_in, labels=labels, loss_query=0)
    q1 = ATTACKS[name](t, s, s_in, labels=labels, loss_query=1)
    # the default is the original image, query 0
    np.testing.assert_array_equal(ATTACKS[name](t, s, s_in, labels=labels), q0)
    swapped = {f: v[..., ::-1] for f, v in t.items()}
    s_swapped = {f: v[..., ::-1] for f, v in s.items()}
    np.testing.assert_allclose(
        ATTACKS[name](swapped, s_swapped, s_in, labels=labels, loss_query=0), q1
    )
    assert not np.allclose(q0, q1)


def test_ye_quantile_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (33, 50, 1))
    s_in = rng.random((33, 50)) < 0.5
    shadow = {"loss": np.repeat(x, 2, -1)}
    target = {"loss": np.zeros((50, 2))}
    got = ATTACKS["ye"](target, shadow, s_in, alpha=0.3, variant="clean")
    ref = [np.quantile(x[~s_in[:, j], j, 0], 0.3) for j in range(50)]
    np.testing.assert_allclose(got, ref)


def test_song_class_thresholds_by_hand():
    labels = np.array([0, 0, 1, 1])
    s_in = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool)
    mentr = np.array([[0.1, 0.5, 1.0, 2.0], [0.6, 0.2, 2.2, 1.1]])
    # class 0: IN {0.1, 0.2}, OUT {0.5, 0.6} → τ0 = 0.2; class 1: IN {1.0, 1.1} OUT {2.0, 2.2}
    np.testing.assert_allclose(class_thresholds(mentr, s_in, labels, 2), [0.2, 1.1])
    shadow = {"mentr": np.stack([mentr, mentr], -1)}
    target = {"mentr": np.array([0.3, 0.05, 1.5, 3.0])[:, None].repeat(2, 1)}
    got = ATTACKS["song"](target, shadow, s_in, labels=labels, variant="clean")
    np.testing.assert_allclose(got, [-0.1, 0.15, -0.4, -1.9])
    with pytest.raises(ValueError, match="labels"):
        ATTACKS["song"](target, shadow, s_in)


def test_song_per_class_thresholds_fit_correctly():
    """Classes on different scales: per-class thresholds separate, one global cut cannot."""
    rng = np.random.default_rng(4)
    n, k = 2000, 8
    labels = rng.integers(0, 2, n)
    masks = rng.random((k, n)) < 0.5
    base = np.where(labels == 0, 1.0, 0.3)[None, :]
    mentr = base - 0.2 * masks + rng.normal(0, 0.03, (k, n))
    feats = {"mentr": np.repeat(mentr[:, :, None], 2, -1)}
    t, s, s_in, t_in = split(feats, masks, 0)
    song = roc_auc_score(t_in, ATTACKS["song"](t, s, s_in, labels=labels, variant="clean"))
    glob = roc_auc_score(t_in, -t["mentr"][:, 0])
    assert song > 0.97 and glob < 0.8, (song, glob)


def rmia_transcription(t, s, s_in, offline, a, gamma):
    """Zarifzadeh et al. 2024, Eq. for Score_MIA, written out loop by loop:
    LR_θ(x, z) = (Pr(x|θ)/Pr(x)) · (Pr(z)/Pr(z|θ)),  Score(x) = Pr_z(LR_θ(x, z) ≥ γ),
    Pr(·) = mean over reference models (online) or ½((1+a)·Pr_OUT + (1−a)) (offline)."""
    n, q_n = t["p_true"].shape
    n_z = t["test_p_true"].shape[0]
    k = s["p_true"].shape[0]
    out = []
    for j in range(n):
        total = 0.0
        for q in range(q_n):
            if offline:
                outs = [s["p_true"][i, j, q] for i in range(k) if not s_in[i, j]]
                pr_x = 0.5 * ((1 + a) * sum(outs) / len(outs) + (1 - a))
            else:
                pr_x = sum(s["p_true"][i, j, q] for i in range(k)) / k
            hits = 0
            for z in range(n_z):
                pr_z = sum(s["test_p_true"][i, z, q] for i in range(k)) / k
                if offline:
                    pr_z = 0.5 * ((1 + a) * pr_z + (1 - a))
                lr = (t["p_true"][j, q] / pr_x) * (pr_z / t["test_p_true"][z, q])
                hits += lr >= gamma
            total += hits / n_z
        out.append(total / q_n)
    return np.array(out)


@pytest.mark.parametrize(
    "offline,a,gamma",
    [(False, 1.0, 1.0), (False, 1.0, 2.0), (True, 0.3, 1.0), (True, 0.0, 1.0), (True, 1.0, 1.0)],
)
def test_rmia_matches_its_paper_formula(offline, a, gamma):
    rng = np.random.default_rng(5)
    k, n, n_z = 5, 7, 11
    t = {"p_true": rng.random((n, 2)), "test_p_true": rng.random((n_z, 2))}
    s = {"p_true": rng.random((k, n, 2)), "test_p_true": rng.random((k, n_z, 2))}
    s_in = rng.random((k, n)) < 0.5
    s_in[0], s_in[1] = False, True  # every sample has an IN and an OUT model
    if offline:
        got = ATTACKS["rmia_offline"](t, s, s_in, a=a, gamma=gamma)
    else:
        got = ATTACKS["rmia_online"](t, s, s_in, gamma=gamma)
    np.testing.assert_allclose(got, rmia_transcription(t, s, s_in, offline, a, gamma))


@pytest.mark.parametrize("offline", [False, True])
def test_rmia_counts_ties_at_gamma(offline):
    """Saturated, tied probabilities (p = 1 or ½ exactly): LR(x)/LR(z) lands exactly on γ,
    and the formula counts it (≥ γ).  All-saturated models score every sample 1; the
    mixed case against the loop transcription, and by hand."""
    k, n, n_z = 4, 3, 4
    ones = {"p_true": np.ones((n, 2)), "test_p_true": np.ones((n_z, 2))}
    s = {"p_true": np.ones((k, n, 2)), "test_p_true": np.ones((k, n_z, 2))}
    s_in = np.array([[True, False, True]] * 2 + [[False, True, False]] * 2)
    name, kw = ("rmia_offline", {"a": 1.0}) if offline else ("rmia_online", {})
    np.testing.assert_array_equal(ATTACKS[name](ones, s, s_in, gamma=1.0, **kw), np.ones(n))
    # z probabilities 1, ½, 1, ½ under the target, 1 under every reference model:
    # LR(z) ∈ {1, ½}; x with LR(x) = 1 beats every z with ratio ≥ 1: all four count at γ = 1,
    # and at γ = 2 exactly the two with LR(z) = ½ (ratio 2, a tie)
    t = {"p_true": np.ones((n, 2)), "test_p_true": np.array([[1.0, 1.0], [0.5, 0.5]] * 2)}
    for gamma, want in ((1.0, 1.0), (2.0, 0.5)):
        got = ATTACKS[name](t, s, s_in, gamma=gamma, **kw)
        np.testing.assert_array_equal(got, np.full(n, want))
        np.testing.assert_array_equal(got, rmia_transcription(t, s, s_in, offline, 1.0, gamma))
    for bad in (0.0, -1.0):  # γ > 0: LR(x)/LR(z) ≥ 0 would count every z
        with pytest.raises(ValueError, match=f"^rmia: gamma must be > 0, got {bad}$"):
            ATTACKS[name](t, s, s_in, gamma=bad, **kw)


def test_curv_lr_clean_uses_each_side_standard_deviation():
    # IN values 1, 5 (mean 3, std 2), OUT 2, 6 (mean 4, std 2): no unit std anywhere
    shadow, s_in = one_sample(np.exp([1.0, 5.0, 2.0, 6.0]), [1, 1, 0, 0])
    target = {"curv_zo": np.exp(np.array([[2.5]]))}
    s = np.log(np.exp(2.5) + 1e-22)
    got = ATTACKS["curv_lr"](target, shadow, s_in, variant="clean")
    assert got[0] == pytest.approx(norm.logpdf(s, 3, 2) - norm.logpdf(s, 4, 2))
    unit = ATTACKS["curv_lr"](target, shadow, s_in, variant="clean", unit_variance=True)
    assert unit[0] == pytest.approx(norm.logpdf(s, 3, 1) - norm.logpdf(s, 4, 1))


def test_ye_quantile_at_alpha_one_is_the_largest_out_loss():
    shadow, s_in = one_sample([0.5, 2.0, 1.0, 3.0], [1, 0, 0, 0], feature="loss")
    target = {"loss": np.array([[1.5]])}
    assert ATTACKS["ye"](target, shadow, s_in, alpha=1.0, variant="clean")[0] == pytest.approx(
        -(1.5 - 3.0)
    )
    assert ATTACKS["ye"](target, shadow, s_in, alpha=0.0, variant="clean")[0] == pytest.approx(
        -(1.5 - 1.0)
    )
    # a single OUT shadow: every quantile is its loss
    one, one_in = one_sample([0.5, 2.0], [1, 0], feature="loss")
    for alpha in (0.0, 0.3, 1.0):
        assert ATTACKS["ye"](target, one, one_in, alpha=alpha, variant="clean")[0] == pytest.approx(
            -(1.5 - 2.0)
        )
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        ATTACKS["ye"](target, shadow, s_in, alpha=1.5, variant="clean")


def test_class_threshold_on_unit_spaced_values_by_hand():
    # class 0: IN values 1, 2, OUT 3, 4 (consecutive integers): τ = 2 separates them
    values = np.array([[1.0, 3.0], [2.0, 4.0]])
    is_in = np.array([[True, False], [True, False]])
    labels = np.array([0, 0])
    np.testing.assert_array_equal(class_thresholds(values, is_in, labels, 2), [2.0, -np.inf])


def test_run_attack_and_labels_match_the_direct_call():
    from curvmia.attacks import run_attack, spec_label

    assert spec_label({"name": "yeom"}) == "yeom"
    assert spec_label({"name": "yeom", "label": "y2"}) == "y2"
    feats, masks, labels = synthetic(n=300, n_models=6, n_z=50)
    t, s, s_in, t_in = split(feats, masks, 0)
    t2 = {f: v[1] for f, v in feats.items()}
    spec = {"name": "curv_nll", "label": "x", "variant": "clean"}
    scores, member = run_attack(spec, [t, t2], s, s_in, np.stack([t_in, masks[1]]), labels)
    np.testing.assert_array_equal(scores[0], ATTACKS["curv_nll"](t, s, s_in, variant="clean"))
    np.testing.assert_array_equal(scores[1], ATTACKS["curv_nll"](t2, s, s_in, variant="clean"))
    assert scores.dtype == np.float64 and member.dtype == bool and member[1].sum() == masks[1].sum()
    # an attack that needs the labels gets them
    song, _ = run_attack({"name": "song", "variant": "clean"}, [t], s, s_in, t_in[None], labels)
    np.testing.assert_array_equal(
        song[0], ATTACKS["song"](t, s, s_in, labels=labels, variant="clean")
    )


# ------------------------------------------------------------------ each paper quirk, pinned


def test_quirk_curv_nll_paper_divides_by_the_in_variance_squared():
    # IN values 0, 4 (mean 2, var 4): the paper divides by 2·V² = 32, not by 2·σ² = 8
    shadow, s_in = one_sample(np.exp([0.0, 4.0, 5.0, 7.0]), [1, 1, 0, 0])
    target = {"curv_zo": np.exp(np.array([[3.0]]))}
    got = ATTACKS["curv_nll"](target, shadow, s_in, variant="paper")[0]
    assert got == pytest.approx(((3 - 6) ** 2 - (3 - 2) ** 2) / 32)


def test_quirk_curv_nll_paper_ignores_the_out_variance():
    # same OUT mean (6), OUT variance 1 vs 100: the paper's score does not move
    target = {"curv_zo": np.exp(np.array([[3.0]]))}
    a, s_in = one_sample(np.exp([0.0, 4.0, 5.0, 7.0]), [1, 1, 0, 0])
    b, _ = one_sample(np.exp([0.0, 4.0, -4.0, 16.0]), [1, 1, 0, 0])
    pa = ATTACKS["curv_nll"](target, a, s_in, variant="paper")[0]
    pb = ATTACKS["curv_nll"](target, b, s_in, variant="paper")[0]
    assert pa == pb
    ca = ATTACKS["curv_nll"](target, a, s_in, variant="clean")[0]
    cb = ATTACKS["curv_nll"](target, b, s_in, variant="clean")[0]
    assert ca != pytest.approx(cb)


def test_quirk_curv_lr_paper_uses_the_variance_as_std():
    # IN values 0, 6 (var 9): the paper's density has "std" 9, the clean one std 3
    shadow, s_in = one_sample(np.exp([0.0, 6.0, 1.0, 3.0]), [1, 1, 0, 0])
    target = {"curv_zo": np.exp(np.array([[2.0]]))}
    got = ATTACKS["curv_lr"](target, shadow, s_in, variant="paper")[0]
    assert got == pytest.approx(norm.pdf(2, 3, 9) / (norm.pdf(2, 2, 1) + 1e-22))


def test_quirk_curv_lr_paper_sums_likelihoods_over_queries_before_the_ratio():
    # two queries with very different likelihoods: Σ g_in / Σ g_out, not a mean of ratios
    x = np.exp(np.array([[0.0, 0.0], [2.0, 20.0], [1.0, 1.0], [3.0, 3.0]]))[:, None, :]
    s_in = np.array([[1], [1], [0], [0]], bool)
    target = {"curv_zo": np.exp(np.array([[1.0, 5.0]]))}
    got = ATTACKS["curv_lr"](target, {"curv_zo": x}, s_in, variant="paper")[0]
    g_in = norm.pdf(1.0, 1.0, 1.0) + norm.pdf(5.0, 10.0, 100.0)
    g_out = norm.pdf(1.0, 2.0, 1.0) + norm.pdf(5.0, 2.0, 1.0)
    assert got == pytest.approx(g_in / (g_out + 1e-22))
    ratios = [norm.pdf(1.0, 1, 1) / norm.pdf(1.0, 2, 1), norm.pdf(5, 10, 100) / norm.pdf(5, 2, 1)]
    assert got != pytest.approx(np.mean(ratios))


def test_quirk_lira_paper_reads_phi_max_with_mean_centres():
    # paper reads phi_max with mean centres, clean reads phi with median centres
    shadow_phi = np.array([0.0, 1.0, 5.0, 10.0, 11.0, 30.0])[:, None, None]
    s_in = np.array([[True], [True], [True], [False], [False], [False]])
    shadow = {"phi": shadow_phi, "phi_max": shadow_phi + 100}
    target = {"phi": np.array([[4.0]]), "phi_max": np.array([[104.0]])}
    m_in, m_out = 2.0, 17.0  # means
    sd_in, sd_out = np.std([0, 1, 5]), np.std([10, 11, 30])
    paper = ATTACKS["lira_online"](target, shadow, s_in, variant="paper")
    assert paper[0] == pytest.approx(norm.logpdf(4, m_in, sd_in) - norm.logpdf(4, m_out, sd_out))
    clean = ATTACKS["lira_online"](target, shadow, s_in, variant="clean")
    assert clean[0] == pytest.approx(norm.logpdf(4, 1.0, sd_in) - norm.logpdf(4, 11.0, sd_out))
    off = ATTACKS["lira_offline"](target, shadow, s_in, variant="clean")
    assert off[0] == pytest.approx(norm.logcdf((4 - 11.0) / sd_out))
    # the clean variant with mean centres, and the paper's phi_max shifted: same as paper
    mean_clean = ATTACKS["lira_online"](target, shadow, s_in, variant="clean", center="mean")
    assert mean_clean[0] == pytest.approx(paper[0])
    target["phi_max"] = target["phi_max"] + 1.0
    assert ATTACKS["lira_online"](target, shadow, s_in, variant="paper")[0] != pytest.approx(
        paper[0]
    )


def test_quirk_lira_offline_paper_is_two_sided():
    # OUT values 0, 2 (mean 1, std 1): obs 3 and obs −1 sit 2 std above / below
    shadow = {"phi_max": np.array([5.0, 5.0, 0.0, 2.0])[:, None, None]}
    s_in = np.array([[1], [1], [0], [0]], bool)
    hi = ATTACKS["lira_offline"]({"phi_max": np.array([[3.0]])}, shadow, s_in, variant="paper")
    lo = ATTACKS["lira_offline"]({"phi_max": np.array([[-1.0]])}, shadow, s_in, variant="paper")
    assert hi[0] == pytest.approx(lo[0]) and hi[0] == pytest.approx(-norm.logpdf(3, 1, 1))
    shadow["phi"] = shadow["phi_max"]
    hi = ATTACKS["lira_offline"]({"phi": np.array([[3.0]])}, shadow, s_in, variant="clean")
    lo = ATTACKS["lira_offline"]({"phi": np.array([[-1.0]])}, shadow, s_in, variant="clean")
    assert hi[0] > lo[0]


def test_lira_offline_uses_each_samples_own_out_std_by_default():
    # two samples with OUT values {1, 3} (mean 2, std 1) and {10, 14} (mean 12, std 2)
    phi = np.array([[5.0, 50.0], [5.0, 50.0], [1.0, 10.0], [3.0, 14.0]])[:, :, None]
    shadow = {"phi_max": phi, "phi": phi}
    s_in = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], bool)
    paper = ATTACKS["lira_offline"]({"phi_max": np.array([[4.0], [9.0]])}, shadow, s_in)
    np.testing.assert_allclose(paper, [-norm.logpdf(4, 2, 1), -norm.logpdf(9, 12, 2)])
    clean = ATTACKS["lira_offline"](
        {"phi": np.array([[4.0], [9.0]])}, shadow, s_in, variant="clean"
    )
    np.testing.assert_allclose(clean, [norm.logcdf(2.0), norm.logcdf(-1.5)])


def test_carlini_paper_both_forms_by_hand():
    """s = log(p/(1 − p + 1e-22) + 1e-22) of the float32 p_max, in float64; then the Curv LR
    or Curv NLL paper formula on s (one sample, one query, written out)."""
    from curvmia.attacks import logit_scale_paper

    p32 = np.array([0.5, 0.9, 1.0, 0.0, 0.7], dtype=np.float32)
    p = p32.astype(np.float64)
    ref = np.log(p / (1 - p + 1e-22) + 1e-22)
    got = logit_scale_paper(p32)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, ref)
    assert (
        got[0] == 0.0
        and got[2] == pytest.approx(np.log(1e22))
        and got[1] == pytest.approx(np.log(9))
    )
    # shadows: IN p 0.5, 0.9, OUT 0.1, 0.3 (float32); target p 0.7
    sp = np.array([0.5, 0.9, 0.1, 0.3], dtype=np.float32)
    shadow = {"p_max_f32": sp[:, None, None]}
    s_in = np.array([[1], [1], [0], [0]], bool)
    target = {"p_max_f32": np.array([[0.7]], dtype=np.float32)}
    ls = np.log(sp.astype(np.float64) / (1 - sp.astype(np.float64) + 1e-22) + 1e-22)
    x = ref[4]
    mu_in, v_in = ls[:2].mean(), ls[:2].var()
    mu_out, v_out = ls[2:].mean(), ls[2:].var()
    nll = ((x - mu_out) ** 2 - (x - mu_in) ** 2) / (2 * (v_in + 1e-32) ** 2)
    got_nll = ATTACKS["carlini_paper"](target, shadow, s_in, form="nll")
    assert got_nll[0] == pytest.approx(nll, rel=1e-12)

    def g(v, mu, var):  # the notebooks' Gaussian with the variance in the std's place
        return np.exp(-0.5 * ((v - mu) / var) ** 2) / (var * np.sqrt(2 * np.pi))

    lr = g(x, mu_in, v_in + 1e-22) / (g(x, mu_out, v_out + 1e-22) + 1e-22)
    got_lr = ATTACKS["carlini_paper"](target, shadow, s_in)
    assert got_lr[0] == pytest.approx(lr, rel=1e-12)


def _thresholds_brute_force(values, is_in, labels, n_classes):
    """Every candidate τ (each distinct value), balanced accuracy of "IN ⟺ value ≤ τ"
    counted directly, in exact fractions; the first (lowest) best τ."""
    tau = []
    for c in range(n_classes):
        v = values[:, labels == c].ravel()
        m = is_in[:, labels == c].ravel()
        m, v = m[~np.isnan(v)], v[~np.isnan(v)]
        if m.all() or not m.any():
            tau.append(np.inf if m.any() else -np.inf)
            continue
        best, best_t = -1, None
        for t in sorted(set(v.tolist())):
            tpr = Fraction(int((v[m] <= t).sum()), int(m.sum()))
            fpr = Fraction(int((v[~m] <= t).sum()), int((~m).sum()))
            bal = (tpr + 1 - fpr) / 2  # exact: equal accuracies tie
            if bal > best:
                best, best_t = bal, t
        tau.append(best_t)
    return np.array(tau)


def test_class_thresholds_with_ties_and_infinities_match_a_brute_force():
    """Tied values form one candidate cut (value ≤ τ takes the whole tie), infinite ones
    too: inf − inf is NaN, so a difference cannot find the ends of a tie of infinities."""
    # class 0: IN 0, +inf, +inf; OUT +inf. Cutting inside the tie of infinities would
    # separate perfectly; the real cuts are τ = 0 (balanced accuracy 2/3) and τ = inf (1/2)
    values = np.array([[0.0], [np.inf], [np.inf], [np.inf]])
    is_in = np.array([[True], [True], [True], [False]])
    np.testing.assert_array_equal(class_thresholds(values, is_in, np.array([0]), 1), [0.0])
    # −inf ties alike: IN −inf, OUT −inf, −inf, 1 → τ = −inf (2/3) beats τ = 1 (1/2)
    values = np.array([[-np.inf], [-np.inf], [-np.inf], [1.0]])
    is_in = np.array([[False], [True], [False], [False]])
    got = class_thresholds(values, is_in, np.array([0]), 1)
    np.testing.assert_array_equal(got, _thresholds_brute_force(values, is_in, np.array([0]), 1))
    np.testing.assert_array_equal(got, [-np.inf])
    # exact ties of balanced accuracy that floats round apart: IN 1, 5 and OUT 0, 2, 3, 4,
    # 6, 7: τ = 1 and τ = 5 both give (tpr + 1 − fpr)/2 = 2/3 (1/2 + 5/6 and 1 + 2/6), but
    # (0.5 + 1 − 1/6)/2 < (1 + 1 − 4/6)/2 in float64; the lowest τ wins
    values = np.arange(8.0)[:, None]
    is_in = np.isin(np.arange(8), [1, 5])[:, None]
    np.testing.assert_array_equal(class_thresholds(values, is_in, np.array([0]), 1), [1.0])
    rng = np.random.default_rng(11)
    for _ in range(30):
        values = rng.choice([-np.inf, -1.0, 0.0, 0.5, 2.0, np.inf, np.nan], (6, 9))
        is_in = rng.random((6, 9)) < 0.5
        labels = rng.integers(0, 3, 9)
        np.testing.assert_array_equal(
            class_thresholds(values, is_in, labels, 4),
            _thresholds_brute_force(values, is_in, labels, 4),
        )


def test_lira_fixed_variance_uses_one_global_std():
    shadow = {"phi": np.array([[0.0, 10.0], [2.0, 14.0], [1.0, 13.0], [3.0, 11.0]])[:, :, None]}
    s_in = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], bool)
    target = {"phi": np.array([[1.5], [12.0]])}
    got = ATTACKS["lira_online"](
        target, shadow, s_in, variant="clean", center="mean", fix_variance=True
    )
    sd_in, sd_out = np.std([0, 2, 10, 14]), np.std([1, 3, 13, 11])
    ref = [
        norm.logpdf(1.5, 1, sd_in) - norm.logpdf(1.5, 2, sd_out),
        norm.logpdf(12, 12, sd_in) - norm.logpdf(12, 12, sd_out),
    ]
    np.testing.assert_allclose(got, ref)


# ------------------------------------------------------------------ robustness


def test_three_positional_arguments_and_labels_suffice():
    feats, masks, labels = synthetic(n=50, n_models=6, n_z=20)
    t, s, s_in, _ = split(feats, masks, 0)
    for name, fn in ATTACKS.items():
        out = fn(t, s, s_in, labels=labels)
        assert out.shape == (50,), name


def test_sample_without_in_or_out_shadow_gets_nan_and_is_counted():
    feats, masks, labels = synthetic(n=20, n_models=40, n_z=10)
    masks[:, 3] = False
    masks[:, 5] = True
    t, s, s_in, _ = split(feats, masks, 0)
    assert coverage(s_in) == {"n_no_in_shadow": 1, "n_no_out_shadow": 1}
    need_in = ("curv_nll", "curv_lr", "lira_online", "sablayrolles")
    need_out = need_in + ("lira_offline", "watson", "ye", "rmia_offline")
    for name in need_out:
        out = ATTACKS[name](t, s, s_in, labels=labels)
        bad = [3, 5] if name in need_in else [5]
        assert np.isnan(out[bad]).all(), name
        assert np.isfinite(np.delete(out, bad)).all(), name


def test_in_out_stats_ignore_nan_and_median():
    x = np.array([1.0, np.nan, 5.0, 2.0, 4.0, 9.0])[:, None, None]
    s_in = np.array([[1], [1], [1], [0], [0], [0]], bool)
    mu_in, var_in, mu_out, var_out = in_out_stats(x, s_in)
    assert (mu_in[0, 0], var_in[0, 0], mu_out[0, 0]) == (3.0, 4.0, 5.0)
    assert var_out[0, 0] == pytest.approx(np.var([2, 4, 9]))
    med_in, _, med_out, _ = in_out_stats(x, s_in, "median")
    assert (med_in[0, 0], med_out[0, 0]) == (3.0, 4.0)


# ---------------------------------------- null check (docs/method.md: Membership layouts)


def null_aucs(masks, pairs, n_rep, seed, n_z=2000):
    """AUROC of every attack on every (target, shadows) pair with no membership signal."""
    out = {name: [] for name in ATTACKS}
    rng = np.random.default_rng(seed)
    n = masks.shape[1]
    labels = rng.integers(0, 10, n)
    for _ in range(n_rep):
        feats = {}
        for prefix, nn in (("", n), ("test_", n_z)):
            b = rng.normal(0, 1, nn)
            noise = rng.normal(0, 1, (len(masks), nn, 2)) + b[None, :, None]
            feats.update({prefix + f: noise for f in FEATURES})
            feats[prefix + "curv_zo"] = np.exp(noise)
            feats[prefix + "p_true"] = sigmoid(noise)
            feats[prefix + "p_max_f32"] = sigmoid(noise).astype(np.float32)
            feats.update({prefix + f + "_f32": noise.astype(np.float32) for f in ("loss", "mentr")})
        for t, shadows in pairs:
            tf = {f: v[t] for f, v in feats.items()}
            sf = {f: v[shadows] for f, v in feats.items()}
            for name, fn in ATTACKS.items():
                score = fn(tf, sf, masks[shadows], labels=labels)
                # convention of curvmia.metrics: a NaN score (no IN or OUT shadow) ranks lowest
                finite = score[np.isfinite(score)]
                score = np.nan_to_num(
                    score, nan=finite.min() - 1, neginf=finite.min() - 1, posinf=finite.max() + 1
                )
                out[name].append(roc_auc_score(masks[t], score))
    return {k: float(np.mean(v)) for k, v in out.items()}


@pytest.mark.parametrize("layout", ["default", "test", "paper", "leave-one-out"])
def test_null_check_on_project_layouts(repo_root, layout):
    """docs/method.md: Membership layouts: on pure noise every attack's AUROC is 0.5 within
    sampling error."""
    import yaml

    if layout == "paper":
        masks = make_masks(20000, 19, 0.5, seed=0, complements=False)
        pairs = [(t, list(range(16))) for t in (16, 17, 18)]
    else:
        path = "tests/config/test.yaml" if layout == "test" else "config/config.yaml"
        m = yaml.safe_load((repo_root / path).read_text())["masks"]
        masks = make_masks(20000, m["n_random"], m["pkeep"], 0, m["complements"])
        if layout == "leave-one-out":
            # each model as target, the others minus its complement as shadows (3 of them)
            rows = sorted(m["shadows"] + m["targets"])
            pairs = []
            for t in (rows[0], rows[7], rows[-1]):
                c = complement_of(t, m["n_random"], m["complements"])
                pairs.append((t, [r for r in rows if r not in (t, c)]))
        else:
            pairs = [(t, m["shadows"]) for t in m["targets"]]
    aucs = null_aucs(masks, pairs, n_rep=2 if len(pairs) >= 2 else 4, seed=1)
    # SE of one AUROC at 10k/10k is 0.0029; the mean of ≥ 4 is within ±0.008 at ~5 sigma
    for name, auc in aucs.items():
        assert abs(auc - 0.5) < 0.008, (layout, name, auc)


def test_null_check_detects_the_biased_layout():
    """The check can fail: a target whose complement is a shadow pulls AUROC below 0.5."""
    masks = make_masks(20000, 8, 0.5, seed=0, complements=True)
    shadows = [r for r in range(16) if r != 7]  # 15, 7's complement, is a shadow
    aucs = null_aucs(masks, [(7, shadows)], n_rep=4, seed=2)
    # SE of the mean of 4 AUROCs at 10k/10k is 0.0015: 0.495 is > 3 SE below 0.5
    assert aucs["curv_nll"] < 0.495 and aucs["lira_online"] < 0.495


# ------------------------------------------------------------------ config checks and health


def test_attack_spec_check_names_the_key():
    check_attack_spec({"name": "curv_nll", "variant": "clean"}, "attacks[0]")
    with pytest.raises(ValueError, match=r"attacks\[1\]\.name"):
        check_attack_spec({"name": "nope"}, "attacks[1]")
    with pytest.raises(ValueError, match=r"attacks\[0\]\.bogus"):
        check_attack_spec({"name": "yeom", "bogus": 1}, "attacks[0]")
    with pytest.raises(ValueError, match=r"attacks\[0\]\.variant"):
        check_attack_spec({"name": "curv_lr", "variant": "fancy"}, "attacks[0]")
    assert "unit_variance" in attack_params("curv_lr")
    assert set(attack_params("rmia_offline")) == {"a", "gamma"}
    assert attack_params("ye") == {"loss_query": 0, "alpha": 1e-4, "variant": "paper"}
    assert attack_params("carlini_paper") == {"form": "lr"}
    with pytest.raises(ValueError, match=r"attacks\[2\]\.form"):
        check_attack_spec({"name": "carlini_paper", "form": "lira"}, "attacks[2]")


def test_healthy_shadows_exclude_or_fail():
    acc = {0: 0.9, 1: 0.5, 2: 0.95, 3: 0.91}
    assert healthy_shadows([0, 1, 2, 3], acc, 0.8, "exclude") == ([0, 2, 3], [1])
    assert healthy_shadows([0, 1, 2, 3], acc, 0.0, "exclude") == ([0, 1, 2, 3], [])
    with pytest.raises(ValueError, match=r"health\.min_test_acc.*\[1\]"):
        healthy_shadows([0, 1, 2, 3], acc, 0.8, "fail")
    with pytest.raises(ValueError, match="only 1 shadows"):
        healthy_shadows([0, 1, 2, 3], acc, 0.92, "exclude")
    with pytest.raises(ValueError, match=r"^model health: no test accuracy for shadow rows \[4\]$"):
        healthy_shadows([0, 1, 4], acc, 0.8, "exclude")


def test_float32_readers_fallback_flag_and_messages_are_exact():
    """Which float32 field each config entry needs (the check before any job runs), the
    carlini fallback's flag (the attack step announces it), and the two refusals' words."""
    import re

    from curvmia.attacks import carlini_p_max, needed_f32_features

    assert needed_f32_features({"name": "yeom"}) == ["loss_f32"]  # paper is the default
    assert needed_f32_features({"name": "ye", "variant": "paper"}) == ["loss_f32"]
    assert needed_f32_features({"name": "song"}) == ["mentr_f32"]
    assert needed_f32_features({"name": "watson", "variant": "clean"}) == []
    assert needed_f32_features({"name": "carlini_paper"}) == []
    assert needed_f32_features({"name": "curv_lr", "variant": "paper"}) == []
    p32 = np.array([0.25, 1.0], dtype=np.float32)
    value, fallback = carlini_p_max({"p_max_f32": p32, "p_max": np.array([0.1, 0.2])})
    assert fallback is False and value.tolist() == [0.25, 1.0]
    value, fallback = carlini_p_max({"p_max": np.array([0.1, 0.2])})
    assert fallback is True and value.tolist() == [float(np.float32(0.1)), float(np.float32(0.2))]
    t = {"loss": np.zeros((3, 2)), "test_loss": np.zeros((2, 2))}
    s = {"loss": np.zeros((2, 3, 2)), "test_loss": np.zeros((2, 2, 2))}
    msg = (
        "variant 'paper' reads 'loss_f32' (float32, as the released code computed it), which "
        "these features lack: rescore with scoring.variant: paper, or use variant: clean"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        ATTACKS["yeom"](t, s, np.array([[True] * 3, [False] * 3]))
    with pytest.raises(ValueError, match="^center must be 'mean' or 'median', got 'mode'$"):
        in_out_stats(np.zeros((2, 3, 1)), np.array([[True] * 3, [False] * 3]), "mode")


def _degenerate_features():
    """Synthetic features with every degenerate case real score files hold: a sample with
    no IN shadow, one with no OUT shadow, one whose shadow values are all equal (zero
    variance), one with exact-zero curvature, zero loss and p = 1 (saturated), and one
    with confidences spread over ±1e3 (densities that underflow and ratios that overflow),
    one with p_true = 0 under every model, one with a logit margin of 800."""
    feats, masks, labels = synthetic(n=12, n_models=9, n_z=6, seed=3)
    masks[:, 0] = False
    masks[:, 1] = True
    for k, v in feats.items():
        if not k.startswith("test_"):
            v[:, 2] = v[0, 2]
    feats["curv_zo"][:, 3] = 0.0
    for k in ("p_true", "p_max", "p_max_f32"):
        feats[k][:, 3] = 1.0
    for k in ("loss", "loss_f32", "mentr", "mentr_f32"):
        feats[k][:, 3] = 0.0
    for k in ("phi", "phi_max"):
        feats[k][:, 4] *= 1e3
    feats["curv_zo"][:, 4] = np.exp(np.clip(feats["phi"][:, 4], -700, 700))
    # sample 5: p_true = 0 under every model (the softmax underflows; log-softmax keeps the
    # loss finite); sample 6: a logit margin of 800 under every model
    feats["p_true"][:, 5] = 0.0
    for k in ("loss", "loss_f32", "mentr", "mentr_f32"):
        feats[k][:, 5] = 800.0
    feats["phi"][:, 5] = -800.0
    feats["phi"][:, 6] = feats["phi_max"][:, 6] = 800.0
    return split(feats, masks, 0), labels


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_warn_about_nothing_on_degenerate_features(name):
    """NaN, ±inf, zero variances and overflowing ratios are expected in real score files:
    each attack gives its defined value there (NaN where a side has no shadow) without
    a numpy warning in the job log."""
    import warnings

    (t, s, s_in, _), labels = _degenerate_features()
    variants = ("paper", "clean") if "variant" in attack_params(name) else (None,)
    for variant in variants:
        kw = {} if variant is None else {"variant": variant}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = ATTACKS[name](t, s, s_in, labels=labels, **kw)
        assert out.shape == (12,), (name, variant)


def test_refusals_name_the_setting_and_what_was_expected():
    (t, s, s_in, _), labels = _degenerate_features()
    with pytest.raises(ValueError, match=r"^health\.action must be 'exclude' or 'fail', got 'x'$"):
        healthy_shadows([0, 1, 2], {0: 0.9, 1: 0.9, 2: 0.9}, 0.5, "x")
    with pytest.raises(ValueError, match=r"^rmia_offline: a must be in \[0, 1\], got 1\.5$"):
        ATTACKS["rmia_offline"](t, s, s_in, a=1.5)
    with pytest.raises(ValueError, match=r"^song: needs the samples' labels \(labels=\.\.\.\)$"):
        ATTACKS["song"](t, s, s_in)


@pytest.mark.parametrize("name", ["yeom", "sablayrolles", "watson", "ye", "song"])
def test_clean_loss_baselines_never_read_the_float32_fields(name):
    """variant: clean reads the float64 features, of the target and of every shadow: float32
    fields holding other values change nothing (and their absence is no error)."""
    feats, masks, labels = synthetic(n=40, n_models=8, n_z=10, seed=4)
    t, s, s_in, _ = split(feats, masks, 0)
    plain_t = {k: v for k, v in t.items() if not k.endswith("_f32")}
    plain_s = {k: v for k, v in s.items() if not k.endswith("_f32")}
    want = ATTACKS[name](plain_t, plain_s, s_in, labels=labels, variant="clean")
    noisy = {k: (v[::-1].copy() if k.endswith("_f32") else v) for k, v in s.items()}
    got = ATTACKS[name](t, noisy, s_in, labels=labels, variant="clean")
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(ATTACKS[name](t, noisy, s_in, labels=labels), want)


def test_lira_offline_zero_out_variance_and_fixed_variance_by_formula():
    """A sample whose OUT shadows agree (σ_out = 0 + 1e-30): the paper form's −log N and the
    clean form's log Φ at that σ; ``fix_variance`` pools one OUT std over all samples; LiRA
    online's default is the per-sample std."""
    from scipy.special import log_ndtr

    shadow = {"phi": np.array([[0.0, 10.0], [2.0, 14.0], [1.0, 13.0], [1.0, 11.0]])[:, :, None]}
    s_in = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], bool)
    target = {"phi": np.array([[1.5], [12.0]]), "phi_max": np.array([[0.5], [12.0]])}
    shadow["phi_max"] = shadow["phi"]
    sd = 1e-30  # sample 0's OUT values are 1 and 1
    clean = ATTACKS["lira_offline"](target, shadow, s_in, variant="clean", center="mean")
    assert clean[0] == log_ndtr(0.5 / sd) == 0.0
    assert clean[1] == pytest.approx(log_ndtr(0.0))  # 12 is the OUT mean of sample 1
    paper = ATTACKS["lira_offline"](target, shadow, s_in, variant="paper")
    assert paper[0] == pytest.approx(0.5 * (0.5 / sd) ** 2 + np.log(sd) + 0.5 * np.log(2 * np.pi))
    pooled = np.std([1.0, 1.0, 13.0, 11.0])
    fixed = ATTACKS["lira_offline"](
        target, shadow, s_in, variant="clean", center="mean", fix_variance=True
    )
    np.testing.assert_allclose(fixed, log_ndtr((np.array([1.5, 12.0]) - [1.0, 12.0]) / pooled))
    online = ATTACKS["lira_online"]
    kw = {"variant": "clean", "center": "mean"}
    per_sample = online(target, shadow, s_in, fix_variance=False, **kw)
    np.testing.assert_array_equal(online(target, shadow, s_in, **kw), per_sample)
    assert not np.allclose(online(target, shadow, s_in, fix_variance=True, **kw), per_sample)


def test_lira_online_at_zero_variance_on_both_sides_by_formula():
    """Shadows that agree on both sides (σ = 0 + 1e-30): a target at both centres scores
    exactly 0; a target at the IN centre with the OUT centre 0.1 away scores the OUT
    term's ½(0.1/σ)² (the log σ terms cancel)."""
    shadow = {"phi": np.array([[0.7, 0.7], [0.7, 0.7], [0.7, 0.8], [0.7, 0.8]])[:, :, None]}
    shadow["phi_max"] = shadow["phi"]
    s_in = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], bool)
    target = {"phi": np.array([[0.7], [0.7]]), "phi_max": np.array([[0.7], [0.7]])}
    for variant in ("paper", "clean"):
        got = ATTACKS["lira_online"](target, shadow, s_in, variant=variant, center="mean")
        assert got[0] == 0.0, variant
        assert got[1] == pytest.approx(0.5 * (0.1 / 1e-30) ** 2, rel=1e-9), variant


def test_rmia_refuses_when_either_side_lacks_the_population():
    (t, s, s_in, _), labels = _degenerate_features()
    for name in ("rmia_online", "rmia_offline"):
        for side in ("target", "shadow"):
            tt = {k: v for k, v in t.items() if not (side == "target" and k == "test_p_true")}
            ss = {k: v for k, v in s.items() if not (side == "shadow" and k == "test_p_true")}
            with pytest.raises(ValueError, match=r"^rmia: needs the test split's features"):
                ATTACKS[name](tt, ss, s_in, labels=labels)


def test_in_out_stats_reads_a_zero_one_mask_as_booleans():
    """Masks saved as 0/1 numbers (uint8 in a file, floats from a text file) select IN and
    OUT shadows exactly as booleans do."""
    from curvmia.attacks import in_out_stats

    x = np.arange(24.0).reshape(4, 3, 2) ** 1.5
    mask = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]], dtype=np.uint8)
    want = in_out_stats(x, mask.astype(bool))
    for m in (mask, mask.astype(np.float64)):
        got = in_out_stats(x, m)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    # and by hand: sample 0's IN shadows are 0 and 2
    np.testing.assert_allclose(got[0][0], (x[0, 0] + x[2, 0]) / 2)


def test_health_floor_is_inclusive_two_shadows_suffice_and_the_message_rounds_to_4():
    acc = {0: 0.8, 1: 0.45678, 2: 0.95, 3: 0.1}
    assert healthy_shadows([0, 1, 2], acc, 0.8, "exclude") == ([0, 2], [1])  # 0.8 = floor: kept
    msg = (
        r"^health\.min_test_acc: shadows \[1, 3\] have test accuracy \[0\.4568, 0\.1\] below 0\.8$"
    )
    with pytest.raises(ValueError, match=msg):
        healthy_shadows([0, 1, 2, 3], acc, 0.8, "fail")


def test_masked_quantile_is_nanquantile_over_the_valid_entries():
    """Against np.quantile (method linear) of each column's valid entries: one shadow or
    several, a full column, an empty one (NaN), a single valid entry, q = 0, 0.3, ½ and 1;
    and a full column whose maximum is +inf, read exactly at q = 1."""
    from curvmia.attacks import _masked_quantile

    rng = np.random.default_rng(40)
    for s_count in (1, 2, 5):
        x = rng.normal(size=(s_count, 5, 2))
        valid = rng.random((s_count, 5, 2)) < 0.6
        valid[:, 0] = True  # a full column
        valid[:, 1] = False  # an empty one
        valid[0, 2], valid[1:, 2] = True, False  # a single valid entry
        for q in (0.0, 0.3, 0.5, 1.0):
            want = np.full((5, 2), np.nan)
            for i in range(5):
                for j in range(2):
                    v = x[valid[:, i, j], i, j]
                    if len(v):
                        want[i, j] = np.quantile(v, q)
            got = _masked_quantile(x, valid, q)
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"S={s_count} q={q}")
        x[:, 0, 0] = np.arange(s_count)
        x[-1, 0, 0] = np.inf
        assert _masked_quantile(x, valid, 1.0)[0, 0] == np.inf
        assert _masked_quantile(x, valid, 0.0)[0, 0] == (0.0 if s_count > 1 else np.inf)


def test_numeric_membership_masks_read_as_booleans_in_every_attack():
    """Masks given as 0/1 floats (read from a text file) give the same scores as booleans,
    and the coverage counts; run_attack returns the membership as booleans."""
    from curvmia.attacks import coverage, run_attack

    (t, s, s_in, _), labels = _degenerate_features()
    for name in sorted(ATTACKS):
        want = ATTACKS[name](t, s, s_in, labels=labels)
        got = ATTACKS[name](t, s, s_in.astype(float), labels=labels)
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert (
        coverage(s_in.astype(float))
        == coverage(s_in)
        == {
            "n_no_in_shadow": 1,
            "n_no_out_shadow": 1,
        }
    )
    _, member = run_attack({"name": "yeom"}, [t], s, s_in, s_in[:1].astype(np.uint8), labels)
    assert member.dtype == bool and (member == s_in[:1]).all()


def test_attack_defaults_and_spec_checks():
    """RMIA's default γ is 1; LiRA offline honours an explicit centre in the paper variant;
    an entry's label is no parameter; an unknown variant or form is refused by name."""
    (t, s, s_in, _), labels = _degenerate_features()
    for name in ("rmia_online", "rmia_offline"):
        default = ATTACKS[name](t, s, s_in)
        np.testing.assert_array_equal(default, ATTACKS[name](t, s, s_in, gamma=1.0))
        assert not np.array_equal(default, ATTACKS[name](t, s, s_in, gamma=2.0), equal_nan=True)
    med = ATTACKS["lira_offline"](t, s, s_in, variant="paper", center="median")
    mean = ATTACKS["lira_offline"](t, s, s_in, variant="paper", center="mean")
    assert not np.allclose(med, mean, equal_nan=True)
    check_attack_spec({"name": "yeom", "label": "my loss attack"}, "attacks[0]")
    with pytest.raises(ValueError, match=r"^variant must be one of \('paper', 'clean'\), got 'x'$"):
        ATTACKS["yeom"](t, s, s_in, variant="x")
    msg = r"^carlini_paper: form must be one of \('lr', 'nll'\), got 'x'$"
    with pytest.raises(ValueError, match=msg):
        ATTACKS["carlini_paper"](t, s, s_in, form="x")


def test_rmia_with_one_population_sample_and_references_at_zero():
    """A population z of one sample: each score is 0 or 1 (counted over one, not two); a
    sample that every reference model gives p = 0 while the target does not has LR = +inf:
    above every z, without a numpy warning."""
    import warnings

    (t, s, s_in, _), labels = _degenerate_features()
    t1 = {**t, "test_p_true": t["test_p_true"][:1]}
    s1 = {**s, "test_p_true": s["test_p_true"][:, :1]}
    one = ATTACKS["rmia_online"](t1, s1, s_in)
    # per query 0 or 1, averaged over the two queries
    assert set(np.unique(one[~np.isnan(one)])) <= {0.0, 0.5, 1.0} and (one == 0.5).any()
    s0 = {**s, "p_true": s["p_true"].copy()}
    s0["p_true"][:, 7] = 0.0
    t0 = {**t, "p_true": t["p_true"].copy()}
    t0["p_true"][7] = 1e-300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ATTACKS["rmia_online"](t0, s0, s_in)
    assert got[7] == 1.0
