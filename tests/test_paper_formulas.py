"""The released notebooks' formulas, transcribed independently (plain numpy loops, none of
curvmia's helpers), against the package on arrays where the released code's quirks matter:
float32 saturation (p = 1, loss = 0), exact-zero curvature and zero-variance IN/OUT sides.
Each quirk (docs/method.md, Attacks) changes at least one asserted number if reverted."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from curvmia.attacks import ATTACKS
from curvmia.scores import float32_features

REPO = Path(__file__).resolve().parents[1]
# numpy's nan-functions warn on the samples with no IN or no OUT shadow (NaN, as intended)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
EPS = 1e-22


# ------------------------------------------------------------------ the notebooks, transcribed


def nb_dist_params(scores, masks):
    """get_score_dist_params: scores (Q, N, S), masks (N, S); nanmean / nanvar per side."""
    out = {"means_in": [], "means_out": [], "var_in": [], "var_out": []}
    for aug in range(scores.shape[0]):
        ins = np.where(masks == 1, scores[aug], np.nan)
        outs = np.where(masks == 0, scores[aug], np.nan)
        out["means_in"].append(np.nanmean(ins, axis=1))
        out["means_out"].append(np.nanmean(outs, axis=1))
        out["var_in"].append(np.nanvar(ins, axis=1))
        out["var_out"].append(np.nanvar(outs, axis=1))
    return {k: np.vstack(v) for k, v in out.items()}


def nb_nll(x, mean, var):
    ll = -((x - mean) ** 2) / (2 * var**2) - 0.5 * np.log(var**2) - 0.5 * np.log(2 * np.pi)
    return -ll


def nb_likelihood(x, mean, var):
    return np.exp(
        -((x - mean) ** 2) / (2 * var**2) - 0.5 * np.log(var**2) - 0.5 * np.log(2 * np.pi)
    )


def nb_likelihood_ratio(test, p):
    """get_likelihood_ratio: test (Q, N)."""
    lin = np.zeros(test.shape[1])
    lout = np.zeros(test.shape[1])
    for aug in range(test.shape[0]):
        lin += nb_likelihood(test[aug], p["means_in"][aug], p["var_in"][aug] + EPS)
        lout += nb_likelihood(test[aug], p["means_out"][aug], p["var_out"][aug] + EPS)
    return lin / (lout + EPS)


def nb_nll_ratio(test, p):
    """get_nll_ratio: V_in in both terms, + 1e-32."""
    lin = np.zeros(test.shape[1])
    lout = np.zeros(test.shape[1])
    for aug in range(test.shape[0]):
        lin += nb_nll(test[aug], p["means_in"][aug], p["var_in"][aug] + 1e-32)
        lout += nb_nll(test[aug], p["means_out"][aug], p["var_in"][aug] + 1e-32)
    return -(lin - lout)


def nb_log_err(x):
    return np.log(x + EPS)


def nb_logit_scale(x):
    return nb_log_err(x / (1 - x + EPS))


def nb_loss_baselines(test_loss, train_loss, masks):
    """Yeom, Sablayrolles (get_mast), Watson (get_mast_offline), Ye (attack R): one query."""
    ins = np.where(masks == 1, train_loss, np.nan)
    outs = np.where(masks == 0, train_loss, np.nan)
    mu_in, mu_out = np.nanmean(ins, axis=1), np.nanmean(outs, axis=1)
    q = np.nanpercentile(outs, 1e-4 * 100, axis=1)
    return {
        "yeom": -test_loss,
        "sablayrolles": -(test_loss - (mu_in + mu_out) / 2),
        "watson": -(test_loss - mu_out),
        "ye": -(test_loss - q),
    }


# ------------------------------------------------------------------ arrays with the quirks


def quirky(seed=0, s=12, n=240):
    """Shadow (S, N, 2) and target (N, 2) features in the package's layout.

    Samples 0..39: every IN shadow saturates (p_max = 1, loss = 0, curv_zo = 0 in float32:
    zero IN variance); 40..59: every OUT shadow does (zero OUT variance); the rest vary.
    float64 values near saturation stay just below 1 (p) or above 0 (loss)."""
    rng = np.random.default_rng(seed)
    masks = rng.random((s + 1, n)) < 0.5
    masks[:, :3] = True  # a few samples IN for every model: no OUT shadow (NaN)
    logit = rng.normal(3, 3, (s + 1, n, 2)) + 2.0 * masks[:, :, None]
    inn = masks[:, :, None]
    logit = np.where(inn & (np.arange(n) < 40)[None, :, None], 30.0, logit)
    logit = np.where(
        ~inn & ((np.arange(n) >= 40) & (np.arange(n) < 60))[None, :, None], 30.0, logit
    )
    logit[-1, :10] = 30.0  # some target values saturate too
    p64 = 1 / (1 + np.exp(-logit))  # float64: 1 − 9e-14 at logit 30, still < 1
    p32 = p64.astype(np.float32)  # saturates to exactly 1
    loss64 = np.log1p(np.exp(-logit))  # 9e-14 at 30, never 0
    loss32 = np.where(p32 == 1, 0.0, loss64).astype(np.float32)  # float32 CE ties at 0
    curv = np.exp(rng.normal(-3, 1, (s + 1, n, 2)) - masks[:, :, None])
    curv = np.where(p32 == 1, 0.0, curv)  # exact-zero ZO values where the loss is flat
    feats = {
        "curv_zo": curv,
        "p_max": p64,
        "p_max_f32": p32,
        "p_true": p64 * 0.9,  # the true class is not the max class: must not be read
        "p_true_f32": (p64 * 0.9).astype(np.float32),
        "loss": loss64,
        "loss_f32": loss32,
    }
    target = {k: v[-1] for k, v in feats.items()}
    shadow = {k: v[:-1] for k, v in feats.items()}
    return target, shadow, masks[:-1], masks[-1]


def nb_layout(shadow_feat, target_feat, shadow_in):
    """Package layout (S, N, Q) / (N, Q) → the notebooks' (Q, N, S) / (Q, N), masks (N, S)."""
    return shadow_feat.transpose(2, 1, 0), target_feat.T, shadow_in.T.astype(int)


def same(got, ref):
    """Equal to 1e-9 relative, NaN where the reference is NaN, and no absolute slack (so a
    float64 loss of 1e-18 is not a float32 loss of 0)."""
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=0, equal_nan=True)


# ------------------------------------------------------------------ the comparisons


def test_the_arrays_exercise_every_quirk():
    t, s, s_in, _ = quirky()
    sc = np.log(s["curv_zo"] + EPS)
    v_in = [np.var(sc[s_in[:, j], j, 0]) for j in range(3, 60)]
    v_out = [np.var(sc[~s_in[:, j], j, 0]) for j in range(3, 60)]
    assert min(v_in) == 0 and min(v_out) == 0 and max(v_in) > 0  # zero-variance sides
    assert (s["p_max_f32"] == 1).mean() > 0.1 and (s["p_max"] < 1).all()  # saturation
    assert (s["loss_f32"] == 0).mean() > 0.1 and (s["loss"] > 0).all()  # exact-zero losses


@pytest.mark.parametrize("name", ["curv_nll", "curv_lr"])
def test_curvature_attacks_match_the_notebooks(name):
    t, s, s_in, _ = quirky()
    sh, tg, m = nb_layout(nb_log_err(s["curv_zo"]), nb_log_err(t["curv_zo"]), s_in)
    params = nb_dist_params(sh, m)
    ref = (nb_nll_ratio if name == "curv_nll" else nb_likelihood_ratio)(tg, params)
    got = ATTACKS[name](t, s, s_in, variant="paper")
    same(got, ref)
    assert np.isfinite(ref[3:]).all()  # zero-variance sides stay finite in the notebooks


@pytest.mark.parametrize("form", ["lr", "nll"])
def test_carlini_paper_matches_the_notebooks(form):
    t, s, s_in, _ = quirky()
    # the notebooks load the float32 max-softmax probability into float64 arrays
    sh, tg, m = nb_layout(
        nb_logit_scale(s["p_max_f32"].astype(np.float64)),
        nb_logit_scale(t["p_max_f32"].astype(np.float64)),
        s_in,
    )
    params = nb_dist_params(sh, m)
    ref = (nb_likelihood_ratio if form == "lr" else nb_nll_ratio)(tg, params)
    got = ATTACKS["carlini_paper"](t, s, s_in, form=form)
    same(got, ref)
    # the fallback (no float32 field) casts p_max: here it saturates the same way
    drop = {k: v for k, v in t.items() if k != "p_max_f32"}
    drop_s = {k: v for k, v in s.items() if k != "p_max_f32"}
    same(ATTACKS["carlini_paper"](drop, drop_s, s_in, form=form), ref)


@pytest.mark.parametrize("name", ["yeom", "sablayrolles", "watson", "ye"])
@pytest.mark.parametrize("query", [0, 1])
def test_loss_baselines_read_the_float32_loss(name, query):
    t, s, s_in, _ = quirky()
    sh, tg, m = nb_layout(
        s["loss_f32"].astype(np.float64)[..., query : query + 1],
        t["loss_f32"].astype(np.float64)[:, query : query + 1],
        s_in,
    )
    ref = nb_loss_baselines(tg[0], sh[0], m)[name]
    same(ATTACKS[name](t, s, s_in, loss_query=query), ref)
    # clean reads the float64 loss: the ties at 0 are gone
    clean = ATTACKS[name](t, s, s_in, loss_query=query, variant="clean")
    assert not np.array_equal(np.isnan(clean) | (clean == ref), np.ones_like(clean, bool))


def test_float32_scorer_features_tie_like_the_released_code():
    """Softmax and cross-entropy of float32 logits in float32 (numpy reference): confident
    samples tie at loss 0 and p = 1 exactly; float64 values cast to float32 do not."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (64, 10)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    z[:16, :] = 0.0
    z[np.arange(16), y[:16]] = 20.0 + np.arange(16, dtype=np.float32)  # confident, true class
    z[16:20, :] = 0.0
    z[np.arange(16, 20), (y[16:20] + 1) % 10] = 30.0  # confident, wrong class
    got = {k: v.numpy() for k, v in float32_features(torch.tensor(z), torch.tensor(y)).items()}
    zmax = z.max(1, keepdims=True)
    e = np.exp(z - zmax, dtype=np.float32)
    sum_e = e.sum(1, dtype=np.float32)
    logp = (z - zmax) - np.log(sum_e)[:, None]
    prob = e / sum_e[:, None]
    rows = np.arange(64)
    loss_ref = -logp[rows, y]
    p_y = prob[rows, y]
    others = prob.copy()
    others[rows, y] = 0
    mentr_ref = -(1 - p_y) * np.log(p_y) - (others * np.log(1 - others + np.float32(1e-9))).sum(1)
    for k, ref in (
        ("loss_f32", loss_ref),
        ("p_true_f32", p_y),
        ("p_max_f32", prob.max(1)),
        ("mentr_f32", mentr_ref),
    ):
        assert got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], ref, rtol=2e-6, atol=2e-7, err_msg=k)
    # the ties: exactly where float32 arithmetic gives them
    np.testing.assert_array_equal(got["loss_f32"] == 0, loss_ref == 0)
    np.testing.assert_array_equal(got["p_max_f32"] == 1, prob.max(1) == 1)
    assert (loss_ref[:16] == 0).sum() >= 12 and (prob.max(1)[16:20] == 1).all()
    # a float64 loss cast afterwards keeps no tie
    z64 = z.astype(np.float64)
    loss64 = (
        np.log(np.exp(z64 - z64.max(1, keepdims=True)).sum(1))
        - (z64 - z64.max(1, keepdims=True))[rows, y]
    )
    assert (loss64[:16].astype(np.float32) > 0).all()


def test_song_uses_the_original_image_and_loss_baselines_the_flip_on_cifar():
    """The released Mentr scores used the original image on every dataset; the loss
    baselines read the flip on CIFAR and the original on ImageNet; the "Carlini et al."
    row used the Curv LR form on CIFAR and the Curv NLL form on ImageNet."""
    for name, loss_q, form in (("cifar10", 1, "lr"), ("cifar100", 1, "lr"), ("imagenet", 0, "nll")):
        specs = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())["attacks"]
        by = {sp["name"]: sp for sp in reversed(specs) if sp.get("variant", "paper") == "paper"}
        assert by["song"].get("loss_query", 0) == 0, name
        for base in ("yeom", "sablayrolles", "watson", "ye"):
            assert by[base].get("loss_query", 0) == loss_q, (name, base)
        assert by["carlini_paper"].get("form", "lr") == form, name
    # the query is the one read: Song on swapped queries = Song on the other query
    t, s, s_in, _ = quirky()
    labels = np.arange(s_in.shape[1]) % 3
    for d in (t, s):
        d["mentr_f32"] = d["loss_f32"] + np.float32(0.5)
    q0 = ATTACKS["song"](t, s, s_in, labels=labels)
    sw = ({k: v[..., ::-1] for k, v in t.items()}, {k: v[..., ::-1] for k, v in s.items()})
    same(ATTACKS["song"](*sw, s_in, labels=labels, loss_query=1), q0)
    assert not np.allclose(ATTACKS["song"](t, s, s_in, labels=labels, loss_query=1), q0)


def test_missing_float32_fields_are_an_error_naming_the_file(tmp_path):
    from curvmia.io import save_npz
    from curvmia.scores import check_float32_features

    good, bad = tmp_path / "model_0.npz", tmp_path / "model_1.npz"
    a = np.zeros((3, 2), np.float32)
    save_npz(good, loss_f32=a, test_loss_f32=a)
    save_npz(bad, loss=a.astype(np.float64), test_loss=a.astype(np.float64))
    check_float32_features([str(good)], ["loss_f32"])
    with pytest.raises(ValueError, match=r"model_1\.npz: no \['loss_f32'\].*rescore"):
        check_float32_features([str(good), str(bad)], ["loss_f32"])
    t, s, s_in, _ = quirky()
    t.pop("loss_f32")
    with pytest.raises(ValueError, match="loss_f32.*rescore"):
        ATTACKS["yeom"](t, s, s_in)
