"""Per-sample features from logits against direct float64 formulas."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from curvmia.scores import logit_features, query_view


def test_logit_features_against_direct_formulas():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (50, 6))
    z[0] = [30, -5, 0, 1, 2, 3]  # a confident sample
    y = rng.integers(0, 6, 50)
    y[0] = 0
    got = {k: v.numpy() for k, v in logit_features(torch.tensor(z), torch.tensor(y)).items()}
    for i in range(50):
        p = np.exp(z[i] - z[i].max())
        p /= p.sum()
        py = p[y[i]]
        others = np.delete(np.arange(6), y[i])
        assert got["loss"][i] == pytest.approx(-np.log(py), rel=1e-9, abs=1e-12)
        assert got["p_true"][i] == pytest.approx(py)
        assert got["p_max"][i] == pytest.approx(p.max())
        # phi = log p_y − log Σ_{y'≠y} p_y'
        assert got["phi"][i] == pytest.approx(np.log(py) - np.log(p[others].sum()), rel=1e-6)
        k = np.argmax(z[i])
        rest = np.delete(z[i], k)
        assert got["phi_max"][i] == pytest.approx(z[i, k] - np.log(np.exp(rest).sum()), rel=1e-9)
        mentr = -(1 - py) * np.log(py) - sum(p[j] * np.log(1 - p[j]) for j in others)
        assert got["mentr"][i] == pytest.approx(mentr, rel=1e-6, abs=1e-12)
    # float64 from logits keeps phi finite where p_y rounds to 1 in float32
    assert np.isfinite(got["phi"][0]) and got["phi"][0] > 25


def test_queries():
    x = torch.arange(8.0).reshape(1, 1, 2, 4)
    assert torch.equal(query_view(x, 0), x)
    assert torch.equal(query_view(x, 1)[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    with pytest.raises(ValueError):
        query_view(x, 2)


def _reference_views(images_u8, mean, std):
    """Normalised float32 images (the scoring dtype path) and their horizontal mirror images,
    in numpy: query 0 and query 1 as the score file defines them."""
    x = images_u8.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(mean[0])) / np.float32(std[0])
    return x, x[..., ::-1].copy()


def test_score_model_features_are_those_of_each_query_view_and_key():
    """Every feature of both splits and both queries against a reference built outside
    scores.py: query 1 is the model on the mirrored image, each query's ZO and Hutchinson
    draws carry that query's own key (seed, row, split, query)."""
    from torch import nn

    from curvmia.curvature import hutchinson, zo_curvature
    from curvmia.data import Prepared
    from curvmia.scores import F32_FEATURES, FEATURES, score_model

    rng = np.random.default_rng(0)
    data = Prepared(
        train_images=rng.integers(0, 256, (37, 1, 4, 4), dtype=np.uint8),
        train_labels=rng.integers(0, 3, 37).astype(np.int64),
        test_images=rng.integers(0, 256, (11, 1, 4, 4), dtype=np.uint8),
        test_labels=rng.integers(0, 3, 11).astype(np.int64),
        manifest={"mean": [0.5], "std": [0.3]},
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    cfg = {"variant": "clean", "h": 1e-3, "niter": 3, "batch_size": 16, "seed": 5}
    cfg["hutch_nprobes"] = 2
    cpu = torch.device("cpu")
    a = score_model(model, data, scoring=cfg, row=2, device=cpu, log=lambda s: None)
    ref_model = model.double().eval()
    for prefix, split_id, imgs, labs in (
        ("", 0, data.train_images, data.train_labels),
        ("test_", 1, data.test_images, data.test_labels),
    ):
        n = len(labs)
        views = _reference_views(imgs, [0.5], [0.3])
        y = torch.from_numpy(labs)
        for q, view in enumerate(views):
            x = torch.from_numpy(view).double()
            with torch.no_grad():
                z = ref_model(x).numpy()
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            py = p[np.arange(n), labs]
            np.testing.assert_allclose(a[prefix + "loss"][:, q], -np.log(py), rtol=1e-9)
            np.testing.assert_allclose(a[prefix + "p_true"][:, q], py, rtol=1e-9)
            np.testing.assert_allclose(a[prefix + "p_max"][:, q], p.max(1), rtol=1e-9)
            words = [5, 2, split_id, q]
            zo = zo_curvature(ref_model, x, y, h=1e-3, niter=3, seed=words, index=torch.arange(n))
            np.testing.assert_allclose(a[prefix + "curv_zo"][:, q], zo.numpy(), rtol=1e-7)
            tr, tr2 = hutchinson(ref_model, x, y, nprobes=2, seed=words, index=torch.arange(n))
            np.testing.assert_allclose(a[prefix + "curv_hutch"][:, q], tr.numpy(), rtol=1e-9)
            np.testing.assert_allclose(a[prefix + "curv_hutch_sq"][:, q], tr2.numpy(), rtol=1e-9)
        # the two views differ, so the features above pin which view each query scored
        assert not np.allclose(a[prefix + "loss"][:, 0], a[prefix + "loss"][:, 1])
    for f in FEATURES:
        assert a[f].shape == (37, 2) and a["test_" + f].shape == (11, 2)
    meta = json.loads(str(a["meta"]))
    assert meta["dtype"] == "torch.float64" and meta["compiled"] is False
    assert meta["channels_last"] is True and meta["queries"] == ["original", "hflip"]
    assert (meta["n"], meta["n_test"], meta["row"]) == (37, 11, 2)
    assert meta["threads"] == torch.get_num_threads() and meta["folded_bn"] == 0
    # score_split on its own, with its defaults: no Hutchinson features, the same ZO scores
    from curvmia.scores import ScoreSettings, score_split, use_channels_last

    # a forward of its own (a compiled one on CUDA) runs every ZO forward batch, each padded
    # to max_batch images; same scores
    shapes = []

    def fwd(batch):
        shapes.append(tuple(batch.shape))
        return ref_model(batch)

    logs = []
    kw = {"mean": np.array([0.5]), "std": np.array([0.3]), "seed_words": [5, 2, 0]}
    st = ScoreSettings(h=1e-3, niter=3, batch_size=16, device=cpu, dtype=torch.float64)
    own = score_split(
        ref_model,
        data.train_images,
        data.train_labels,
        replace(st, max_batch=20, fwd=fwd),
        log=logs.append,
        **kw,
    )
    np.testing.assert_array_equal(own["curv_zo"], a["curv_zo"])
    # another step h reaches the ZO engine: the keyed zo_curvature of query 0 with that h
    wide = score_split(ref_model, data.train_images, data.train_labels, replace(st, h=0.05), **kw)
    x0 = torch.from_numpy(_reference_views(data.train_images, [0.5], [0.3])[0]).double()
    y0 = torch.from_numpy(data.train_labels)
    zo = zo_curvature(ref_model, x0, y0, h=0.05, niter=3, seed=[5, 2, 0, 0], index=torch.arange(37))
    np.testing.assert_allclose(wide["curv_zo"][:, 0], zo.numpy(), rtol=1e-7)
    assert not np.allclose(wide["curv_zo"], a["curv_zo"])
    # 37 samples · 3 iterations per query, 5 pairs (20 images) per forward: 23 batches each
    assert shapes == [(20, 1, 4, 4)] * 46
    # the progress line of each query names the split, the query and the count
    for q, view in enumerate(("original", "hflip")):
        assert any(
            re.fullmatch(rf"population query {q} \({view}\): 37/37 samples, \d+ samples/s", m)
            for m in logs
        ), logs

    alone = score_split(
        ref_model, data.train_images, data.train_labels, st, log=lambda s: None, **kw
    )
    np.testing.assert_array_equal(alone["curv_zo"], a["curv_zo"])
    assert np.isnan(alone["curv_hutch"]).all() and np.isnan(alone["curv_hutch_sq"]).all()
    assert use_channels_last({}) and use_channels_last({"channels_last": True})
    assert not use_channels_last({"channels_last": False})
    # paper variant: the float32 model, the same losses up to float32 rounding; the ZO
    # draws depend on the model's row, the deterministic features do not
    cfg32 = {**cfg, "variant": "paper", "hutch_nprobes": 0}
    b = score_model(model, data, scoring=cfg32, row=2, device=cpu, log=lambda s: None)
    c = score_model(model, data, scoring=cfg32, row=3, device=cpu, log=lambda s: None)
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
    assert json.loads(str(b["meta"]))["dtype"] == "torch.float32"
    assert not np.array_equal(b["curv_zo"], c["curv_zo"])
    np.testing.assert_array_equal(b["loss"], c["loss"])
    # float32 fields (the released code's values) under paper only, stored as float32
    for f in F32_FEATURES:
        assert b[f].dtype == np.float32 and b["test_" + f].shape == (11, 2)
        assert f not in a
    np.testing.assert_allclose(b["loss_f32"], b["loss"], rtol=1e-4, atol=1e-6)
    assert json.loads(str(b["meta"]))["float32_features"] == list(F32_FEATURES)
    assert json.loads(str(a["meta"]))["float32_features"] == []


def test_tf32_switch_sets_the_flag_and_the_metadata():
    """scoring.tf32: true = PyTorch's defaults (cuDNN on, matmul off), recorded in the
    metadata; on the CPU the scores do not change."""
    from curvmia.scores import score_model, set_tf32

    cpu = torch.device("cpu")
    try:
        on = score_model(
            _bn_model(),
            _toy_data(),
            scoring={**SCORING, "tf32": True},
            row=0,
            device=cpu,
            log=lambda s: None,
        )
        assert torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        set_tf32({})
    assert not torch.backends.cudnn.allow_tf32
    off = score_model(_bn_model(), _toy_data(), scoring=SCORING, row=0, device=cpu, log=print)
    m_on, m_off = json.loads(str(on["meta"])), json.loads(str(off["meta"]))
    assert m_on["tf32"] == {"matmul": False, "cudnn": True} and m_on["scoring"]["tf32"] is True
    assert m_off["tf32"] == {"matmul": False, "cudnn": False} and "tf32" not in m_off["scoring"]
    for k in on:
        if k != "meta":
            np.testing.assert_array_equal(on[k], off[k])


def _toy_data(n=37, n_test=11, shape=(1, 4, 4), classes=3):
    from curvmia.data import Prepared

    rng = np.random.default_rng(1)
    return Prepared(
        train_images=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        train_labels=rng.integers(0, classes, n).astype(np.int64),
        test_images=rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        test_labels=rng.integers(0, classes, n_test).astype(np.int64),
        manifest={"mean": [0.5] * shape[0], "std": [0.3] * shape[0]},
    )


def _bn_model(in_channels=1):
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 3),
    )
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.3, 0.3)
        m[1].running_var.uniform_(0.5, 2.0)
    return m


SCORING = {
    "variant": "paper",
    "h": 1e-3,
    "niter": 3,
    "batch_size": 16,
    "seed": 5,
    "hutch_nprobes": 2,
    "memory_mb": 256,
}


@pytest.mark.parametrize("channels_last,channels", [(True, 3), (False, 1)])
def test_scores_bit_identical_across_batch_sizes_budgets_and_shards(channels_last, channels):
    from curvmia.io import load_npz, save_npz
    from curvmia.scores import FEATURES, merge_shards, score_model

    data = _toy_data(shape=(channels, 4, 4))
    cpu = torch.device("cpu")
    quiet = {"device": cpu, "log": lambda s: None, "row": 4}
    base = {**SCORING, "channels_last": channels_last}
    ref = score_model(_bn_model(channels), data, scoring=base, **quiet)
    assert json.loads(str(ref["meta"]))["channels_last"] is channels_last
    assert np.isfinite(ref["curv_hutch"]).all() and (ref["curv_hutch_sq"] > 0).all()
    assert (ref["curv_hutch"] >= 0).all()  # ReLU network: PSD input Hessian
    # memory budgets of 0.01 MiB give forward batches of a few images, with ragged last
    # chunks; fixed forward batches (12: ragged too) and the timed choice (auto)
    for bs, mem, fb in ((1, 256, 4), (7, 0.01, "auto"), (64, 0.003, "auto"), (16, 256, 12)):
        scoring = {**base, "batch_size": bs, "memory_mb": mem, "forward_batch": fb}
        got = score_model(_bn_model(channels), data, scoring=scoring, **quiet)
        for f in FEATURES:
            # the Hutchinson features too (measured; torch does not promise it for backward)
            np.testing.assert_array_equal(got[f], ref[f], err_msg=f"{f} bs={bs}")
            np.testing.assert_array_equal(got["test_" + f], ref["test_" + f])
    # three shards (uneven: 37 = 12 + 12 + 13 and 11 = 3 + 4 + 4) merge into the unsharded file
    parts = [
        score_model(_bn_model(channels), data, scoring={**base, "shards": 3}, shard=(i, 3), **quiet)
        for i in range(3)
    ]
    assert [len(p["loss"]) for p in parts] == [12, 12, 13]
    merged = merge_shards(parts, log=lambda s: None)
    assert sorted(merged) == sorted(ref)
    assert "kernels_per_shard" not in json.loads(str(merged["meta"]))
    # shards from machines with other kernels merge; each shard's kernels are recorded
    # (scripts/score.py adds the machine's "kernels" to the metadata)
    metas = [json.loads(str(p["meta"])) for p in parts]
    for m, kernels in zip(metas, ({"cpu": "A"}, {"cpu": "A"}, {"cpu": "B"})):
        m["kernels"] = kernels
    mixed = [{**p, "meta": np.array(json.dumps(m))} for p, m in zip(parts, metas)]
    mixed_meta = json.loads(str(merge_shards(mixed, log=lambda s: None)["meta"]))
    assert mixed_meta["kernels_per_shard"] == [{"cpu": "A"}, {"cpu": "A"}, {"cpu": "B"}]
    for k in ref:
        np.testing.assert_array_equal(merged[k], ref[k], err_msg=k)
    # the files on disk: same arrays, same metadata
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        save_npz(f"{d}/a.npz", **merged)
        save_npz(f"{d}/b.npz", **ref)
        a, b = load_npz(f"{d}/a.npz"), load_npz(f"{d}/b.npz")
        assert str(a["meta"]) == str(b["meta"])
        assert open(f"{d}/a.npz", "rb").read() == open(f"{d}/b.npz", "rb").read()
    # shards out of order or from another model are refused
    with pytest.raises(ValueError, match=r"^shard 0 of 3: file holds shard \[1, 3\]$"):
        merge_shards([parts[1], parts[0], parts[2]], log=lambda s: None)
    other = score_model(
        _bn_model(channels), data, scoring=base, shard=(2, 3), device=cpu, row=5, log=lambda s: None
    )
    with pytest.raises(ValueError, match="row"):
        merge_shards([parts[0], parts[1], other], log=lambda s: None)
    # a key that only one shard's metadata holds is named too
    extra = {**parts[2], "meta": np.array(json.dumps({**metas[2], "extra": 1}))}
    with pytest.raises(ValueError, match=r"differs from shard 0 in \['extra'\]$"):
        merge_shards([parts[0], parts[1], extra], log=lambda s: None)
    # shards that agree with each other but not with their own sample count
    wrong = [{**p, "meta": np.array(json.dumps({**m, "n": 38}))} for p, m in zip(parts, metas)]
    with pytest.raises(ValueError, match=r"^merged population split has 37 samples, expected 38$"):
        merge_shards(wrong, log=lambda s: None)


def test_scoring_leaves_batchnorm_statistics_and_weights_untouched():
    from curvmia.scores import score_model

    model = _bn_model().train()  # even when handed over in train mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = score_model(
        model, _toy_data(), scoring=SCORING, row=0, device=torch.device("cpu"), log=lambda s: None
    )
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    meta = json.loads(str(out["meta"]))
    assert meta["tf32"] == {"matmul": False, "cudnn": False}
    assert meta["device"] == "cpu" and meta["torch"] == torch.__version__
    assert meta["device_name"] == "cpu"
    assert meta["negative_curv_hutch_frac"] == 0.0
    assert meta["dtype"] == "torch.float32" and "shards" not in meta["scoring"]


def test_hutch_off_gives_nan_features():
    from curvmia.scores import score_model

    out = score_model(
        _bn_model(),
        _toy_data(),
        scoring={**SCORING, "hutch_nprobes": 0},
        row=0,
        device=torch.device("cpu"),
        log=lambda s: None,
    )
    assert np.isnan(out["curv_hutch"]).all() and np.isnan(out["test_curv_hutch_sq"]).all()
    assert json.loads(str(out["meta"]))["negative_curv_hutch_frac"] is None


def test_fused_attention_off_for_second_order_vit():
    import timm
    from timm.layers import set_fused_attn, use_fused_attn

    from curvmia.curvature import exact_hessian_trace, hutchinson
    from curvmia.scores import disable_fused_attention

    was = use_fused_attn()
    try:
        disable_fused_attention()
        torch.manual_seed(0)
        vit = (
            timm.create_model(
                "vit_tiny_patch16_224",
                pretrained=False,
                img_size=8,
                patch_size=4,
                in_chans=1,
                embed_dim=16,
                depth=1,
                num_heads=2,
                num_classes=3,
            )
            .double()
            .eval()
        )
        assert vit.blocks[0].attn.fused_attn is False
        x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
        y = torch.tensor([0, 2])
        h = np.ones((1, 1))
        while h.shape[0] < 64:
            h = np.block([[h, h], [h, -h]])
        tr, _ = hutchinson(vit, x, y, probes=torch.tensor(h).view(64, 1, 8, 8))
        torch.testing.assert_close(tr, exact_hessian_trace(vit, x, y), rtol=1e-8, atol=1e-12)
        # the reference: the diagonal of torch.autograd.functional.hessian
        f = lambda z: torch.nn.functional.cross_entropy(vit(z[None]), y[:1])  # noqa: E731
        hess = torch.autograd.functional.hessian(f, x[0]).reshape(64, 64)
        assert tr[0].item() == pytest.approx(hess.trace().item(), rel=1e-8, abs=1e-12)
    finally:
        set_fused_attn(was)


def test_channels_last_option_scores_the_same_model():
    from curvmia.scores import score_model

    cpu = torch.device("cpu")
    quiet = {"device": cpu, "log": lambda s: None, "row": 1}
    a = score_model(_bn_model(), _toy_data(), scoring={**SCORING, "channels_last": False}, **quiet)
    b = score_model(_bn_model(), _toy_data(), scoring={**SCORING, "channels_last": True}, **quiet)
    assert json.loads(str(b["meta"]))["channels_last"] is True
    assert json.loads(str(a["meta"]))["channels_last"] is False
    # auto means channels_last on every device (measured faster on the CPU too): the same
    # arrays as an explicit true, bit for bit
    c = score_model(_bn_model(), _toy_data(), scoring={**SCORING, "channels_last": "auto"}, **quiet)
    assert json.loads(str(c["meta"]))["channels_last"] is True
    for k in ("loss", "curv_zo", "curv_hutch"):
        np.testing.assert_array_equal(c[k], b[k])
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b["curv_hutch"], a["curv_hutch"], rtol=1e-3, atol=1e-6)


def test_fold_bn_option_folds_the_forward_only_model():
    from curvmia.scores import score_model

    quiet = {"device": torch.device("cpu"), "log": lambda s: None, "row": 1}
    on = score_model(_bn_model(), _toy_data(), scoring=SCORING, **quiet)  # default: true
    off = score_model(_bn_model(), _toy_data(), scoring={**SCORING, "fold_bn": False}, **quiet)
    assert json.loads(str(on["meta"]))["folded_bn"] == 1  # the one Conv2d-BatchNorm2d pair
    assert json.loads(str(off["meta"]))["folded_bn"] == 0
    np.testing.assert_allclose(on["loss"], off["loss"], rtol=1e-5, atol=1e-7)
    # the white-box path runs the folded copy too: the same traces up to rounding
    np.testing.assert_allclose(on["curv_hutch"], off["curv_hutch"], rtol=1e-4, atol=1e-7)
    assert not np.array_equal(on["curv_hutch"], off["curv_hutch"])
    assert np.corrcoef(on["curv_zo"].ravel(), off["curv_zo"].ravel())[0, 1] > 0.99


def test_check_float32_features_names_the_file_and_the_missing_fields(tmp_path):
    """A score file without the float32 fields a paper-variant attack reads: an error naming
    the file and the missing fields (never a silent cast)."""
    from curvmia.scores import check_float32_features

    names = ("loss_f32", "test_loss_f32", "mentr_f32", "test_mentr_f32")
    full = {f: np.zeros((3, 2), np.float32) for f in names}
    np.savez(tmp_path / "ok.npz", **full)
    np.savez(tmp_path / "old.npz", loss=np.zeros((3, 2)), test_loss=np.zeros((3, 2)))
    check_float32_features([str(tmp_path / "ok.npz")], ["loss_f32"])  # nothing missing
    check_float32_features([str(tmp_path / "old.npz")], [])  # nothing needed
    with pytest.raises(ValueError) as e:
        check_float32_features(
            [str(tmp_path / "ok.npz"), str(tmp_path / "old.npz")], ["loss_f32", "mentr_f32"]
        )
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'old.npz'}: no ['loss_f32', 'mentr_f32'] (float32")
    assert "rescore" in msg and msg.endswith(", or set the attack's variant: clean")
    # the fix, with its config key spelled as the config spells it
    assert "rescore this model with scoring.variant: paper (delete the file and rerun)" in msg


def test_shard_range_partitions_the_samples_and_refuses_other_shards():
    from curvmia.scores import shard_range

    for n, k in ((37, 3), (11, 3), (10, 10), (5, 1), (3, 4)):
        ranges = [shard_range(n, i, k) for i in range(k)]
        # contiguous, covering 0..n, sizes floor(n/k) or ceil(n/k)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert {b - a for a, b in ranges} <= {n // k, -(-n // k)}
    assert shard_range(37, 2, 3) == (24, 37)  # 37 = 12 + 12 + 13
    for bad in (-1, 3, 4):
        with pytest.raises(ValueError, match=f"^shard {bad} out of range for 3 shards$"):
            shard_range(37, bad, 3)


def test_score_split_feeds_the_model_in_the_memory_format_asked_for():
    """channels_last: every image batch reaching the model (clean forward, ZO, Hutchinson) is
    in channels_last with it, in the default layout without it (3 channels: the two differ)."""
    from curvmia.scores import ScoreSettings, score_split

    data = _toy_data(n=9, shape=(3, 4, 4))
    model = _bn_model(3).eval()
    seen = []
    hook = model[0].register_forward_pre_hook(
        lambda _m, args: seen.append(
            args[0].is_contiguous(memory_format=torch.channels_last) and not args[0].is_contiguous()
        )
    )
    for channels_last in (True, False):
        seen.clear()
        score_split(
            model.to(
                memory_format=torch.channels_last if channels_last else torch.contiguous_format
            ),
            data.train_images,
            data.train_labels,
            ScoreSettings(h=1e-3, niter=2, batch_size=4, device=torch.device("cpu"),
                          dtype=torch.float32, channels_last=channels_last, nprobes=1),
            mean=np.array([0.5] * 3),
            std=np.array([0.3] * 3),
            seed_words=[1, 0, 0],
            log=lambda s: None,
        )  # fmt: skip
        assert seen and all(v is channels_last for v in seen), (channels_last, seen)
    hook.remove()


def test_score_model_logs_its_choices_and_counts_exact_zeros():
    """The job log names the folded pairs, the forward batch and how it was chosen, each
    split's and query's progress, the online chooser's rates (fed by the scoring itself),
    and the exact-zero ZO counts that the metadata stores."""
    from curvmia.scores import score_model

    cpu = torch.device("cpu")
    logs: list[str] = []
    # 0.01 MiB: forward batches of 4 or 8 images, so the chooser times full batches
    out = score_model(
        _bn_model(),
        _toy_data(),
        scoring={**SCORING, "memory_mb": 0.01},
        row=0,
        device=cpu,
        log=logs.append,
    )
    assert logs[0] == "scoring model: 1 Conv2d-BatchNorm2d pairs folded"
    assert re.fullmatch(r"forward batch: [48] images \(auto; memory_mb 0\.01\)", logs[1])
    for name, n in (("population", 37), ("test", 11)):
        for q, view in enumerate(("original", "hflip")):
            line = rf"{name} query {q} \({view}\): {n}/{n} samples, \d+ samples/s"
            assert sum(bool(re.fullmatch(line, x)) for x in logs) == 1, line
    for name, n in (("population", 74), ("test", 22)):  # Progress counts both queries
        assert (
            sum(x.startswith(f"{name} (both queries): {n}/{n} samples (100%)") for x in logs) == 1
        )
    online = [x for x in logs if x.startswith("online choice")]
    assert len(online) == 1
    rates = r"[48]: \d+(, 8: \d+)?"
    assert re.fullmatch(
        rf"online choice at the end: forward batch [48] \(recent best images/s by size: {rates}\)",
        online[0],
    )
    meta = json.loads(str(out["meta"]))
    assert meta["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    assert meta["compiled"] is False
    zeros = int((out["curv_zo"] == 0).sum()), int((out["test_curv_zo"] == 0).sum())
    assert (meta["zero_curv_zo"], meta["zero_curv_zo_test"]) == zeros and sum(zeros) > 0
    assert f"population: exact zero curv_zo {zeros[0]}, negative curv_hutch fraction 0.0" in logs
    assert f"test: exact zero curv_zo {zeros[1]}, negative curv_hutch fraction 0.0" in logs
    # a fixed forward batch is named as such (with the default budget, 256 MiB, when the
    # config gives none), and nothing chooses online; compile applies on CUDA only; a config
    # without hutch_nprobes computes no Hutchinson features (NaN, as with 0)
    logs.clear()
    scoring = {k: v for k, v in SCORING.items() if k not in ("memory_mb", "hutch_nprobes")}
    fixed = score_model(
        _bn_model(),
        _toy_data(),
        scoring={**scoring, "forward_batch": 12, "compile": True},
        row=0,
        device=cpu,
        log=logs.append,
    )
    assert logs[1] == "forward batch: 12 images (12; memory_mb 256)"
    assert not any(x.startswith("online choice") for x in logs)
    assert json.loads(str(fixed["meta"]))["compiled"] is False
    for k in out:
        if k != "meta" and "curv_hutch" not in k:
            np.testing.assert_array_equal(fixed[k], out[k], err_msg=k)
    for k in ("curv_hutch", "curv_hutch_sq", "test_curv_hutch", "test_curv_hutch_sq"):
        assert np.isnan(fixed[k]).all() and np.isfinite(out[k]).all(), k


def test_score_model_feeds_the_model_in_channels_last_when_asked():
    """The layout asked for reaches every batch that score_model times or scores (an
    unfolded model here, so the hook sees the model itself)."""
    from curvmia.scores import score_model

    seen: list[bool] = []
    for channels_last in (True, False):
        seen.clear()
        model = _bn_model(3)
        model[0].register_forward_pre_hook(
            lambda _m, args: seen.append(
                args[0].is_contiguous(memory_format=torch.channels_last)
                and not args[0].is_contiguous()
            )
        )
        score_model(
            model,
            _toy_data(shape=(3, 4, 4)),
            scoring={**SCORING, "fold_bn": False, "channels_last": channels_last},
            row=0,
            device=torch.device("cpu"),
            log=lambda s: None,
        )
        # the first forward is activation_bytes' memory probe (two images, default layout);
        # every later one times or scores
        assert len(seen) > 10 and not seen[0], channels_last
        assert all(v is channels_last for v in seen[1:]), channels_last
    # and the weights themselves (4-D ones only) are stored in the layout asked for
    from curvmia.scores import prepare_model

    for channels_last in (True, False):
        m = prepare_model(
            _bn_model(3), {**SCORING, "channels_last": channels_last}, torch.device("cpu")
        )
        w = m[0].weight
        cl = w.is_contiguous(memory_format=torch.channels_last)
        assert cl is channels_last and w.is_contiguous() is not channels_last, channels_last


class _Clock:
    """scores' ``time`` module in the tests below: each perf_counter call advances ``step``."""

    def __init__(self, step: float = 2.5):
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


def test_score_split_logs_progress_when_more_than_five_seconds_passed(monkeypatch):
    """A query's progress line comes when more than 5 s passed since the last one (exactly
    5 s is not more) and at the end: blocks of 4 of 13 samples at 2.5 s per clock reading."""
    from curvmia import scores
    from curvmia.scores import ScoreSettings, score_split

    monkeypatch.setattr(scores, "time", _Clock())
    data = _toy_data(n=13)
    logs: list[str] = []
    score_split(
        _bn_model().eval(),
        data.train_images,
        data.train_labels,
        ScoreSettings(h=1e-3, niter=1, batch_size=4, max_batch=16, device=torch.device("cpu"),
                      dtype=torch.float32),
        mean=np.array([0.5]),
        std=np.array([0.3]),
        seed_words=[1, 0, 0],
        log=logs.append,
    )  # fmt: skip
    # query 0: t0 = 2.5, blocks end at 5, 7.5 (5 s: no line), 10 (7.5 s: a line), 12.5 (end)
    lines = [x for x in logs if " query " in x]
    assert lines == [
        "population query 0 (original): 12/13 samples, 2 samples/s",
        "population query 0 (original): 13/13 samples, 1 samples/s",
        "population query 1 (hflip): 12/13 samples, 2 samples/s",
        "population query 1 (hflip): 13/13 samples, 1 samples/s",
    ]


def test_forward_batches_stay_within_the_configured_size():
    """forward_batch: 12 bounds every batch the model sees (ZO's perturbed copies and the
    clean logits; the two-image memory probe aside); score_split without max_batch uses
    4·niter·batch_size images."""
    from curvmia.scores import ScoreSettings, score_model, score_split

    seen: list[int] = []
    model = _bn_model()
    model[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    scoring = {**SCORING, "fold_bn": False, "forward_batch": 12, "hutch_nprobes": 0}
    score_model(model, _toy_data(), scoring=scoring, row=0, device=torch.device("cpu"),
                log=lambda s: None)  # fmt: skip
    assert seen[0] == 2 and max(seen[1:]) == 12
    seen.clear()
    data = _toy_data(n=40)
    st = ScoreSettings(h=1e-3, niter=2, batch_size=3, device=torch.device("cpu"),
                       dtype=torch.float32)  # fmt: skip
    score_split(model.eval(), data.train_images, data.train_labels, st, mean=np.array([0.5]),
                std=np.array([0.3]), seed_words=[1, 0, 0], log=lambda s: None)  # fmt: skip
    assert max(seen) == 4 * 2 * 3


def test_finalize_counts_strictly_negative_traces_and_logs_through_the_given_log():
    from curvmia.scores import finalize

    tr = np.array([[-1.0, 0.0], [2.0, 0.0]])
    test_tr = np.array([[0.0, -3.0]])
    arrays = {"curv_zo": np.zeros((2, 2)), "curv_hutch": tr,
              "test_curv_zo": np.ones((1, 2)), "test_curv_hutch": test_tr}  # fmt: skip
    logs: list[str] = []
    meta = json.loads(str(finalize(arrays, {"row": 1}, logs.append)["meta"]))
    assert meta["negative_curv_hutch_frac"] == 0.25
    assert meta["negative_curv_hutch_frac_test"] == 0.5
    assert logs == [
        "population: exact zero curv_zo 4, negative curv_hutch fraction 0.25",
        "test: exact zero curv_zo 0, negative curv_hutch fraction 0.5",
    ]


def test_merge_shards_keeps_shard_0s_kernels_names_the_odd_shard_and_logs_via_log():
    from curvmia.scores import merge_shards, score_model

    data = _toy_data()
    quiet = {"device": torch.device("cpu"), "log": lambda s: None}
    base = {**SCORING, "shards": 3}
    parts = [score_model(_bn_model(), data, scoring=base, row=4, shard=(i, 3), **quiet)
             for i in range(3)]  # fmt: skip
    metas = [json.loads(str(p["meta"])) for p in parts]
    for m, kernels in zip(metas, ({"cpu": "B"}, {"cpu": "A"}, {"cpu": "A"})):
        m["kernels"] = kernels
    mixed = [{**p, "meta": np.array(json.dumps(m))} for p, m in zip(parts, metas)]
    logs: list[str] = []
    meta = json.loads(str(merge_shards(mixed, log=logs.append)["meta"]))
    assert meta["kernels"] == {"cpu": "B"}
    assert meta["kernels_per_shard"] == [{"cpu": "B"}, {"cpu": "A"}, {"cpu": "A"}]
    assert [x.split(":")[0] for x in logs] == ["population", "test"]
    odd = score_model(_bn_model(), data, scoring=base, row=5, shard=(0, 3), **quiet)
    with pytest.raises(
        ValueError, match=r"^shard 1 of 3: metadata differs from shard 0 in \['row'\]$"
    ):
        merge_shards([odd, parts[1], parts[2]], log=lambda s: None)


def test_logit_features_in_float64_and_float32_features_in_float32_whatever_the_logits():
    from curvmia.scores import float32_features, logit_features

    rng = np.random.default_rng(3)
    z32 = torch.tensor(rng.normal(0, 4, (6, 5)), dtype=torch.float32)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    a, b = logit_features(z32, y), logit_features(z32.double(), y)
    for k in a:
        assert a[k].dtype == torch.float64 and torch.equal(a[k], b[k]), k
    c, d = float32_features(z32.double(), y), float32_features(z32, y)
    for k in c:
        assert c[k].dtype == torch.float32 and torch.equal(c[k], d[k]), k


def test_score_split_progress_cadence_is_more_than_five_seconds(monkeypatch):
    """At 2.75 s per clock reading the first line comes 5.5 s after the start (8 of 13),
    the next at the end: more than 5 s, not 6."""
    from curvmia import scores
    from curvmia.scores import ScoreSettings, score_split

    monkeypatch.setattr(scores, "time", _Clock(step=2.75))
    data = _toy_data(n=13)
    logs: list[str] = []
    st = ScoreSettings(h=1e-3, niter=1, batch_size=4, max_batch=16, device=torch.device("cpu"),
                       dtype=torch.float32)  # fmt: skip
    score_split(_bn_model().eval(), data.train_images, data.train_labels, st,
                mean=np.array([0.5]), std=np.array([0.3]), seed_words=[1, 0, 0],
                log=logs.append)  # fmt: skip
    got = [x.split(",")[0] for x in logs if " query " in x]
    assert got == [
        "population query 0 (original): 8/13 samples",
        "population query 0 (original): 13/13 samples",
        "population query 1 (hflip): 8/13 samples",
        "population query 1 (hflip): 13/13 samples",
    ]


def test_query_view_refuses_an_unknown_query_by_name():
    from curvmia.scores import query_view

    with pytest.raises(
        ValueError, match=r"^unknown query 2; expected 0 \(original\) or 1 \(hflip\)$"
    ):
        query_view(torch.zeros(1, 1, 2, 2), 2)


def test_score_model_folds_batchnorm_in_the_layout_asked(monkeypatch):
    from curvmia import scores

    asked: list[bool] = []
    real = scores.fold_batchnorm

    def spy(model, **kw):
        asked.append(kw.get("channels_last"))
        return real(model, **kw)

    monkeypatch.setattr(scores, "fold_batchnorm", spy)
    for cl in (True, False):
        scores.score_model(_bn_model(), _toy_data(), scoring={**SCORING, "channels_last": cl},
                           row=0, device=torch.device("cpu"), log=lambda s: None)  # fmt: skip
    assert asked == [True, False]


def test_score_settings_from_the_config_and_the_compiled_forward(monkeypatch):
    """score_settings reads the scoring config in one place; with compile on a CUDA device the
    forward is torch.compile(model, dynamic=False) at the memory bound (no timing, no online
    choice), and nothing is compiled elsewhere (a spy stands in for torch.compile)."""
    from curvmia.curvature import forward_batch_size
    from curvmia.scores import ScoreSettings, score_settings

    compiled: list[tuple] = []

    def spy(model, **kw):
        compiled.append((model, kw))
        return "compiled forward"

    monkeypatch.setattr(torch, "compile", spy)
    model, sample = _bn_model().eval(), torch.zeros(1, 4, 4)
    cap = forward_batch_size(model, sample, 256)
    cfg = {**SCORING, "compile": True}
    cuda = score_settings(model, sample, cfg, torch.device("cuda"), log=lambda s: None)
    assert compiled == [(model, {"dynamic": False})]
    assert cuda.fwd == "compiled forward" and cuda.chooser is None and cuda.max_batch == cap
    cpu = score_settings(model, sample, {**cfg, "forward_batch": 8}, torch.device("cpu"), print)
    assert len(compiled) == 1 and cpu == ScoreSettings(
        h=1e-3, niter=3, batch_size=16, device=torch.device("cpu"), dtype=torch.float32,
        nprobes=2, with_float32=True, channels_last=True, max_batch=8,
    )  # fmt: skip
    assert cpu.forward_batch == 8 and replace(cpu, max_batch=None).forward_batch == 4 * 3 * 16
