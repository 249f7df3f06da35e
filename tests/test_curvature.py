"""Zero-order curvature: same-draw reference loop, and the closed-form Hessian of a linear model."""

import numpy as np
import torch
from torch import nn

from curvmia.curvature import zo_curvature


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(4 * 6 * 6, 5),
        )
        .double()
        .eval()
    )


def reference_zo(model, x, y, h, niter, seed):
    """Paper-style loop written independently: per sample, per iteration, four losses."""
    g = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(niter):
        rv = torch.randint(0, 2, x.shape, generator=g) * 2.0 - 1.0
        ru = torch.randint(0, 2, x.shape, generator=g) * 2.0 - 1.0
        draws.append((rv.double(), ru.double()))
    out = []
    for i in range(x.shape[0]):
        xi, yi = x[i : i + 1], y[i : i + 1]
        total = 0.0
        for rv, ru in draws:
            v = h * (rv[i : i + 1] + 1e-7)
            u = h * (ru[i : i + 1] + 1e-7)

            def loss(z, yi=yi):
                return nn.functional.cross_entropy(model(z), yi).item()

            q = loss(xi + v + u) - loss(xi - v + u) - loss(xi + v - u) + loss(xi - v - u)
            total += abs(q / (4 * h))
        out.append(total / niter)
    return np.array(out)


def test_zo_matches_independent_same_draw_loop():
    model = tiny_cnn()
    torch.manual_seed(1)
    x = torch.randn(7, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 5, (7,))
    got = zo_curvature(model, x, y, h=1e-3, niter=5, generator=torch.Generator().manual_seed(42))
    want = reference_zo(model, x, y, 1e-3, 5, 42)
    assert got.shape == (7,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-12)
    # a different seed gives different draws, hence different values
    other = zo_curvature(model, x, y, h=1e-3, niter=5, generator=torch.Generator().manual_seed(7))
    assert not np.allclose(other.numpy(), want)


def test_zo_on_linear_softmax_matches_closed_form_hessian():
    """For z = Wx + b the input Hessian of the CE loss is H = Wᵀ(diag p − p pᵀ)W.

    The ZO score estimates h·E|r_uᵀ H r_v| (exact up to O(h³) for this smooth loss).
    Reference: that expectation from H in float64 with 200,000 Rademacher draws.
    ZO uses 4,000 iterations; the Monte-Carlo error of both is below 2%, so the
    stated tolerance is 5% relative.
    """
    torch.manual_seed(0)
    d, k, h = 64, 10, 1e-3
    lin = nn.Linear(d, k).double()
    model = nn.Sequential(nn.Flatten(), lin).eval()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 3, 7])
    got = zo_curvature(model, x, y, h=h, niter=4000, generator=torch.Generator().manual_seed(0))

    w = lin.weight.detach().numpy()
    rng = np.random.default_rng(0)
    for i in range(3):
        z = w @ x[i].reshape(-1).numpy() + lin.bias.detach().numpy()
        p = np.exp(z - z.max())
        p /= p.sum()
        hess = w.T @ (np.diag(p) - np.outer(p, p)) @ w
        ru = rng.choice([-1.0, 1.0], size=(200_000, d))
        rv = rng.choice([-1.0, 1.0], size=(200_000, d))
        expected = h * np.abs(np.einsum("nd,de,ne->n", ru, hess, rv)).mean()
        assert abs(got[i].item() / expected - 1) < 0.05, (i, got[i].item(), expected)
        # here H has few comparable eigenvalues (rank ≤ 9), so the Frobenius shortcut is only rough
        frob = h * np.sqrt(2 / np.pi) * np.linalg.norm(hess)
        assert 0.5 < expected / frob < 1.5
