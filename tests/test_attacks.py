"""Attacks on synthetic scores with known answers, hand-computed formulas, and the null check."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from curvmia.attacks import ATTACKS, attack_params, check_attack_spec
from curvmia.masks import make_masks

FEATURES = ("curv_zo", "loss", "p_true", "p_max", "phi", "phi_max", "mentr")


def synthetic(n=4000, n_models=66, d=1.0, var_b=3.0, seed=0, signal=True):
    """Per sample j a difficulty b_j ~ N(0, var_b); per model and query
    s = b_j ± d·in + ε, ε ~ N(0, 1).  Curvature is lower for members
    (log curv = b − d·in + ε), confidence higher (phi = b + d·in + ε), loss lower."""
    rng = np.random.default_rng(seed)
    masks = rng.random((n_models, n)) < 0.5
    b = rng.normal(0, np.sqrt(var_b), n)
    eps = rng.normal(0, 1, (n_models, n, 2))
    inn = masks[:, :, None].astype(float) if signal else 0.0
    s_curv = b[None, :, None] - d * inn + eps
    s_conf = b[None, :, None] + d * inn + eps
    feats = {
        "curv_zo": np.exp(s_curv),
        "phi": s_conf,
        "phi_max": s_conf,
        "loss": b[None, :, None] + d * (1 - inn) + eps if signal else b[None, :, None] + eps,
    }
    for f in FEATURES:
        feats.setdefault(f, eps)
    return feats, masks


def split(feats, masks, target):
    shadows = [i for i in range(len(masks)) if i != target]
    t = {f: v[target] for f, v in feats.items()}
    s = {f: v[shadows] for f, v in feats.items()}
    return t, s, masks[shadows], masks[target]


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
    feats, masks = synthetic()
    t, s, s_in, t_in = split(feats, masks, 0)
    score = ATTACKS[name](t, s, s_in, variant=variant)
    assert score.shape == (masks.shape[1],)
    assert abs(roc_auc_score(t_in, score) - expected) < tol


def test_curv_lr_paper_and_lira_offline_paper_beat_chance():
    feats, masks = synthetic()
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


def test_yeom_global_threshold_known_auroc():
    # −loss with loss = b + d·(1 − in) + ε: AUROC = Φ(d / sqrt(2·(var_b + 1)))
    feats, masks = synthetic(n=20000, n_models=2)
    t, s, s_in, t_in = split(feats, masks, 0)
    expected = norm.cdf(1.0 / np.sqrt(2 * 4.0))
    assert abs(roc_auc_score(t_in, ATTACKS["yeom"](t, s, s_in)) - expected) < 0.015


def test_curv_nll_paper_formula_by_hand():
    # one sample, one query; shadows: IN values 1, 3 (mean 2, var 1), OUT 2, 6 (mean 4, var 4)
    curv = np.exp(np.array([1.0, 3.0, 2.0, 6.0]))[:, None, None]
    s_in = np.array([[True], [True], [False], [False]])
    target = {"curv_zo": np.exp(np.array([[2.5]]))}
    shadow = {"curv_zo": curv}
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


def test_lira_variants_read_different_features():
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


def test_three_positional_arguments_suffice():
    feats, masks = synthetic(n=50, n_models=6)
    t, s, s_in, _ = split(feats, masks, 0)
    for name, fn in ATTACKS.items():
        out = fn(t, s, s_in)
        assert out.shape == (50,), name


def test_sample_without_in_shadow_gets_nan():
    feats, masks = synthetic(n=20, n_models=40)
    masks[:, 3] = False
    t, s, s_in, _ = split(feats, masks, 0)
    for name in ("curv_nll", "lira_online"):
        out = ATTACKS[name](t, s, s_in)
        assert np.isnan(out[3]) and np.isfinite(np.delete(out, 3)).all()


def null_aucs(masks, shadows, targets, n_rep, seed):
    """AUROC of every attack on every target when features carry no membership signal."""
    out = {name: [] for name in ATTACKS}
    rng = np.random.default_rng(seed)
    for _ in range(n_rep):
        n = masks.shape[1]
        b = rng.normal(0, 1, n)
        noise = rng.normal(0, 1, (len(masks), n, 2)) + b[None, :, None]
        feats = {f: noise for f in FEATURES}
        feats["curv_zo"] = np.exp(noise)
        for t in targets:
            tf = {f: v[t] for f, v in feats.items()}
            sf = {f: v[shadows] for f, v in feats.items()}
            for name, fn in ATTACKS.items():
                score = fn(tf, sf, masks[shadows])
                # convention of curvmia.metrics: a NaN score (no IN or OUT shadow) ranks lowest
                finite = score[np.isfinite(score)]
                score = np.nan_to_num(
                    score, nan=finite.min() - 1, neginf=finite.min() - 1, posinf=finite.max() + 1
                )
                out[name].append(roc_auc_score(masks[t], score))
    return {k: float(np.mean(v)) for k, v in out.items()}


@pytest.mark.parametrize("layout", ["default", "test", "paper"])
def test_null_check_on_project_layouts(repo_root, layout):
    """SPEC §1: on pure noise every attack's AUROC is 0.5 within sampling error."""
    import yaml

    if layout == "paper":
        masks = make_masks(20000, 19, 0.5, seed=0, complements=False)
        shadows, targets = list(range(16)), [16, 17, 18]
    else:
        path = "config/config.yaml" if layout == "default" else "tests/config/test.yaml"
        m = yaml.safe_load((repo_root / path).read_text())["masks"]
        masks = make_masks(20000, m["n_random"], m["pkeep"], 0, m["complements"])
        shadows, targets = m["shadows"], m["targets"]
    aucs = null_aucs(masks, shadows, targets, n_rep=2, seed=1)
    # SE of one AUROC at 10k/10k is 0.0029; the mean of ≥ 4 is within ±0.008 at ~5 sigma
    for name, auc in aucs.items():
        assert abs(auc - 0.5) < 0.008, (layout, name, auc)


def test_null_check_detects_the_biased_layout():
    """The check can fail: a target whose complement is a shadow pulls AUROC below 0.5."""
    masks = make_masks(20000, 8, 0.5, seed=0, complements=True)
    shadows, targets = [r for r in range(16) if r != 7], [7]  # 15, 7's complement, is a shadow
    aucs = null_aucs(masks, shadows, targets, n_rep=4, seed=2)
    # SE of the mean of 4 AUROCs at 10k/10k is 0.0015: 0.495 is > 3 SE below 0.5
    assert aucs["curv_nll"] < 0.495 and aucs["lira_online"] < 0.495


def test_attack_spec_check_names_the_key():
    check_attack_spec({"name": "curv_nll", "variant": "clean"}, "attacks[0]")
    with pytest.raises(ValueError, match=r"attacks\[1\]\.name"):
        check_attack_spec({"name": "nope"}, "attacks[1]")
    with pytest.raises(ValueError, match=r"attacks\[0\]\.bogus"):
        check_attack_spec({"name": "yeom", "bogus": 1}, "attacks[0]")
    with pytest.raises(ValueError, match=r"attacks\[0\]\.variant"):
        check_attack_spec({"name": "curv_lr", "variant": "fancy"}, "attacks[0]")
    assert "unit_variance" in attack_params("curv_lr")
