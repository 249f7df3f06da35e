"""Per-sample features from logits against direct float64 formulas."""

import json

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


def test_score_model_is_deterministic_and_complete():
    from torch import nn

    from curvmia.data import Prepared
    from curvmia.scores import FEATURES, score_model

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
    cfg = {"variant": "paper", "h": 1e-3, "niter": 3, "batch_size": 16, "seed": 5}
    cpu = torch.device("cpu")
    a = score_model(model, data, scoring=cfg, row=2, device=cpu, log=lambda s: None)
    b = score_model(model, data, scoring=cfg, row=2, device=cpu, log=lambda s: None)
    c = score_model(model, data, scoring=cfg, row=3, device=cpu, log=lambda s: None)
    for f in FEATURES:
        assert a[f].shape == (37, 2) and a["test_" + f].shape == (11, 2)
        np.testing.assert_array_equal(a[f], b[f])
    assert not np.array_equal(a["curv_zo"], c["curv_zo"])  # draws depend on the model's row
    np.testing.assert_array_equal(a["loss"], c["loss"])  # deterministic features do not
    assert (a["curv_zo"] >= 0).all()
    # clean variant: float64 model; same loss up to float32 rounding
    d = score_model(
        model, data, scoring={**cfg, "variant": "clean"}, row=2, device=cpu, log=lambda s: None
    )
    np.testing.assert_allclose(d["loss"], a["loss"], rtol=1e-5)
    assert json.loads(str(d["meta"]))["dtype"] == "torch.float64"
