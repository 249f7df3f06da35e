"""Per-sample features from logits against direct float64 formulas."""

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
