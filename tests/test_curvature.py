"""Zero-order curvature: same-draw reference loop, and the closed-form Hessian of a linear model."""

import numpy as np
import pytest
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
    # float64 throughout: 1e-8 (measured 7e-10); ±1 draws held as integers would put
    # h·(r + 1e-7) through float32 and move the scores by 1e-7
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-8, atol=0)
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


# ---- keyed draws, pure-Python reference

M64 = (1 << 64) - 1


def _mix(z: int) -> int:
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def ref_signs(seed_words, index: int, stream: int, d: int) -> np.ndarray:
    """The documented draw scheme in plain Python integers (no torch)."""
    g = 0x9E3779B97F4A7C15
    base = 0
    for w in seed_words:
        base = _mix(base ^ _mix(w + g))
    key = _mix(_mix(index + g) ^ base)
    ks = _mix(key ^ _mix(((stream + 1) * g) & M64))
    out = []
    for w in range((d + 63) // 64):
        word = _mix(ks + ((w + 1) * 0x94D049BB133111EB & M64))
        out.extend(1.0 if (word >> j) & 1 else -1.0 for j in range(64))
    return np.array(out[:d])


def test_keyed_rademacher_matches_reference_and_is_balanced():
    from curvmia import curvature
    from curvmia.curvature import keyed_rademacher, sample_keys

    curvature._TABLES.clear()  # rebuild the cached sign tables: they are checked here too
    words = [3, 11, 0, 1]
    idx = torch.tensor([0, 1, 5, 1000, 2**40])
    keys = sample_keys(words, idx)
    got = keyed_rademacher(keys, torch.tensor([0, 7, 1, 2**20, 3]), (3, 5, 7), torch.float32)
    assert got.shape == (5, 3, 5, 7) and got.dtype == torch.float32
    for row, (i, s) in enumerate(zip(idx.tolist(), [0, 7, 1, 2**20, 3], strict=True)):
        np.testing.assert_array_equal(got[row].reshape(-1).numpy(), ref_signs(words, i, s, 105))
    big = keyed_rademacher(sample_keys([0], torch.arange(200)), 0, (1000,), torch.float64)
    # 200,000 signs: mean within 5 standard errors of 0; neighbours and rows uncorrelated
    assert abs(big.mean().item()) < 5 / np.sqrt(big.numel())
    assert abs((big[:, 1:] * big[:, :-1]).mean().item()) < 5 / np.sqrt(big.numel())
    assert abs((big[1:] * big[:-1]).mean().item()) < 5 / np.sqrt(big.numel())


def bn_cnn(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 6 * 6, 5),
    )
    with torch.no_grad():  # non-trivial running statistics
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m.to(dtype).eval()


def _keyed_zo_case():
    """A BatchNorm CNN, 64 samples and keyed ZO settings shared by the determinism tests."""
    model = bn_cnn()
    torch.manual_seed(3)
    x = torch.randn(64, 2, 6, 6)
    y = torch.randint(0, 5, (64,))
    return model, x, y, {"h": 1e-3, "niter": 3, "seed": [9, 2, 0, 1]}


def test_zo_keyed_bit_identical_across_batch_and_chunk_sizes():
    model, x, y, kw = _keyed_zo_case()
    full = zo_curvature(model, x, y, index=torch.arange(64), **kw)
    assert (full >= 0).all() and (full > 0).float().mean() > 0.5  # float32: a few exact zeros
    for bs in (1, 7, 64):
        parts = torch.cat(
            [
                zo_curvature(
                    model,
                    x[i : i + bs],
                    y[i : i + bs],
                    index=torch.arange(i, i + bs)[: len(x[i : i + bs])],
                    **kw,
                )
                for i in range(0, 64, bs)
            ]
        )
        assert torch.equal(parts, full), bs
    # internal forward batches (memory budgets) that leave ragged last chunks: 64*3 pairs
    for max_batch in (4, 20, 44, 1000):
        assert torch.equal(zo_curvature(model, x, y, max_batch=max_batch, **kw), full), max_batch
    # padded (compile-style) fixed-shape batches give the same values too
    assert torch.equal(zo_curvature(model, x, y, max_batch=28, pad=True, **kw), full)
    # another seed or another sample index changes the draws
    assert not torch.equal(zo_curvature(model, x, y, h=1e-3, niter=3, seed=[9, 2, 0, 0]), full)
    shifted = zo_curvature(model, x, y, index=torch.arange(1, 65), **kw)
    assert not torch.equal(shifted, full)


def test_zo_keyed_matches_independent_loop_on_same_draws():
    """Paper-style loop: per iteration four separate forward calls of the batch."""
    model = tiny_cnn()
    torch.manual_seed(1)
    x = torch.randn(5, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 5, (5,))
    h, niter, words = 1e-3, 4, [1, 2, 3]
    idx = [10, 11, 12, 13, 14]
    total = np.zeros(5)
    for t in range(niter):
        rv = torch.tensor(np.stack([ref_signs(words, i, 2 * t, 36) for i in idx])).view_as(x)
        ru = torch.tensor(np.stack([ref_signs(words, i, 2 * t + 1, 36) for i in idx])).view_as(x)
        v, u = h * (rv + 1e-7), h * (ru + 1e-7)
        with torch.no_grad():
            ls = [
                nn.functional.cross_entropy(model(z), y, reduction="none").numpy()
                for z in (x + v + u, x - v + u, x + v - u, x - v - u)
            ]
        total += np.abs((ls[0] - ls[1] - ls[2] + ls[3]) / (4 * h))
    got = zo_curvature(model, x, y, h=h, niter=niter, seed=words, index=torch.tensor(idx))
    assert got.dtype == torch.float64  # draws, offsets and sums in x's dtype
    np.testing.assert_allclose(got.numpy(), total / niter, rtol=1e-9, atol=1e-12)


# ---- white-box estimators


def mlp() -> nn.Module:
    torch.manual_seed(2)
    return (
        nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Softplus(), nn.Linear(12, 4))
        .double()
        .eval()
    )


def autograd_hessians(model, x, y) -> np.ndarray:
    """Reference: torch.autograd.functional.hessian, one sample at a time."""
    out = []
    for i in range(len(x)):

        def f(z, i=i):
            return nn.functional.cross_entropy(model(z[None]), y[i : i + 1])

        hess = torch.autograd.functional.hessian(f, x[i])
        out.append(hess.reshape(x[i].numel(), x[i].numel()).numpy())
    return np.stack(out)


def sylvester_hadamard(d: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h


@pytest.mark.parametrize("which", ["cnn", "mlp"])
def test_hutchinson_full_basis_is_exact(which):
    from curvmia.curvature import exact_hessian_trace, hutchinson, input_hessian

    if which == "cnn":
        model, shape = tiny_cnn(), (1, 6, 6)
        model[2] = nn.Softplus()  # smooth: a Hessian with negative eigenvalues too
    else:
        model, shape = mlp(), (1, 4, 4)
    torch.manual_seed(4)
    x = torch.randn(6, *shape, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    ref = autograd_hessians(model, x, y)
    np.testing.assert_allclose(input_hessian(model, x, y).numpy(), ref, atol=1e-12)
    tr = np.trace(ref, axis1=1, axis2=2)
    fro2 = (ref**2).sum((1, 2))
    np.testing.assert_allclose(exact_hessian_trace(model, x, y).numpy(), tr, atol=1e-12)
    np.testing.assert_allclose(
        exact_hessian_trace(model, x, y, square=True).numpy(), fro2, rtol=1e-10
    )
    d = int(np.prod(shape))
    # Hadamard rows (±1, orthogonal) as probes: mean rᵀHr = tr H and mean ‖Hr‖² = tr H² exactly
    # 64 rows of the first d columns of a 64×64 Hadamard matrix: its columns are orthogonal,
    # so Σ_k r_k r_kᵀ = 64·I on any subset of them
    probes = torch.tensor(sylvester_hadamard(64)[:, :d]).view(-1, *shape)
    est, est2 = hutchinson(model, x, y, probes=probes)
    np.testing.assert_allclose(est.numpy(), tr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(est2.numpy(), fro2, rtol=1e-10)
    # probes in another dtype are cast to x's (±1 is exact in any dtype)
    est32, _ = hutchinson(model, x, y, probes=probes.to(torch.float32))
    assert torch.equal(est32, est)
    # hutchinson_trace passes its probes on (a seed given too must not replace them)
    from curvmia.curvature import hutchinson_trace

    for square, want in ((False, tr), (True, fro2)):
        got = hutchinson_trace(model, x, y, probes=probes, square=square, seed=[3])
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    if which == "cnn":
        assert (tr < 0).any() or (np.linalg.eigvalsh(ref) < 0).any()


def test_hutchinson_random_probes_within_stated_tolerance():
    """K = 4000 Rademacher probes: Var(rᵀHr) = 2(‖H‖_F² − Σ H_ii²), so the error of the mean
    is below 5 standard errors with overwhelming probability."""
    from curvmia.curvature import hutchinson_trace

    model = mlp()
    torch.manual_seed(5)
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (4,))
    ref = autograd_hessians(model, x, y)
    k = 4000
    est = hutchinson_trace(model, x, y, nprobes=k, seed=[0])
    est2 = hutchinson_trace(model, x, y, nprobes=k, square=True, seed=[0])
    for i in range(4):
        hh = ref[i]
        var = 2 * ((hh**2).sum() - (np.diag(hh) ** 2).sum())
        assert abs(est[i].item() - np.trace(hh)) < 5 * np.sqrt(var / k) + 1e-12
        # ‖Hr‖² = rᵀH²r: the same bound with H² in H's place
        h2 = hh @ hh
        var2 = 2 * ((h2**2).sum() - (np.diag(h2) ** 2).sum())
        assert abs(est2[i].item() - np.trace(h2)) < 5 * np.sqrt(var2 / k) + 1e-12
    # generator draws work too and differ from the keyed ones
    g = hutchinson_trace(model, x, y, nprobes=3, generator=torch.Generator().manual_seed(0))
    assert g.shape == (4,) and not torch.equal(
        g, hutchinson_trace(model, x, y, nprobes=3, seed=[0])
    )


def test_linear_softmax_closed_form_input_hessian():
    """z = Wx + b: H = Wᵀ(diag p − p pᵀ)W, written out in numpy."""
    from curvmia.curvature import exact_hessian_trace, hutchinson, input_hessian

    torch.manual_seed(6)
    lin = nn.Linear(16, 5).double()
    model = nn.Sequential(nn.Flatten(), lin).eval()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 2, 4])
    w, bias = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    got = input_hessian(model, x, y).numpy()
    for i in range(3):
        z = w @ x[i].reshape(-1).numpy() + bias
        p = np.exp(z - z.max())
        p /= p.sum()
        hess = w.T @ (np.diag(p) - np.outer(p, p)) @ w
        np.testing.assert_allclose(got[i], hess, atol=1e-12)
        assert exact_hessian_trace(model, x[i : i + 1], y[i : i + 1]).item() == pytest.approx(
            np.trace(hess), rel=1e-10
        )
    probes = torch.tensor(sylvester_hadamard(16)).view(16, 1, 4, 4)
    tr, tr2 = hutchinson(model, x, y, probes=probes)
    hs = [
        w.T @ (np.diag(pp) - np.outer(pp, pp)) @ w
        for pp in torch.softmax(model(x), 1).detach().numpy()
    ]
    np.testing.assert_allclose(tr.numpy(), [np.trace(hh) for hh in hs], rtol=1e-10)
    np.testing.assert_allclose(tr2.numpy(), [(hh**2).sum() for hh in hs], rtol=1e-10)


def test_hutchinson_keyed_probes_are_their_documented_stream():
    """Keyed probes are stream PROBE_STREAM + k of each sample's key (never a ZO iteration's
    stream 0 .. 2·niter−1): the estimates equal rᵀHr and ‖Hr‖² averaged over the probes built
    by the plain-Python draw reference, with H from torch.autograd.functional.hessian."""
    from curvmia.curvature import PROBE_STREAM, hutchinson

    assert PROBE_STREAM == 1 << 20  # the documented stream offset
    model = mlp()
    torch.manual_seed(8)
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 3, 1])
    words, idx, k = [7, 1, 0, 1], [4, 9, 30], 3
    ref = autograd_hessians(model, x, y)
    tr, tr2 = hutchinson(model, x, y, nprobes=k, seed=words, index=torch.tensor(idx))
    for i, j in enumerate(idx):
        rs = [ref_signs(words, j, (1 << 20) + p, 16) for p in range(k)]
        want = np.mean([r @ ref[i] @ r for r in rs])
        want2 = np.mean([(ref[i] @ r) @ (ref[i] @ r) for r in rs])
        assert tr[i].item() == pytest.approx(want, rel=1e-10, abs=1e-14)
        assert tr2[i].item() == pytest.approx(want2, rel=1e-10)
    # an int seed is the one-word seed list
    one = hutchinson(model, x, y, nprobes=2, seed=7, index=torch.tensor(idx))
    two = hutchinson(model, x, y, nprobes=2, seed=[7], index=torch.tensor(idx))
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_s64_wraps_to_signed():
    from curvmia.curvature import _s64

    assert _s64(2**64 - 1) == -1 and _s64(1 << 63) == -(1 << 63)
    assert _s64((1 << 63) - 1) == (1 << 63) - 1 and _s64(5) == 5 and _s64(2**64 + 3) == 3


def test_hutchinson_keyed_independent_of_batch_size():
    from curvmia.curvature import hutchinson

    model = bn_cnn()
    torch.manual_seed(7)
    x = torch.randn(64, 2, 6, 6)
    y = torch.randint(0, 5, (64,))
    full = hutchinson(model, x, y, nprobes=3, seed=[1, 2], index=torch.arange(64))
    assert (full[0] >= 0).all()  # ReLU network: H = Jᵀ(diag p − ppᵀ)J is PSD
    for bs in (1, 7):
        parts = [
            hutchinson(
                model,
                x[i : i + bs],
                y[i : i + bs],
                nprobes=3,
                seed=[1, 2],
                index=torch.arange(i, min(i + bs, 64)),
            )
            for i in range(0, 64, bs)
        ]
        for j in range(2):
            got = torch.cat([p[j] for p in parts])
            assert torch.equal(got, full[j]), (bs, j)  # bit-identical (measured)


def test_forward_batch_size_follows_the_memory_budget():
    from curvmia.curvature import activation_bytes, forward_batch_size, zo_block_size

    model = bn_cnn()
    sample = torch.zeros(2, 6, 6)
    per = activation_bytes(model, sample)
    # conv, BN, ReLU, conv, ReLU outputs (6·6·6 floats each), flatten (216) and logits (5)
    assert per == 4 * (5 * 216 + 216 + 5) and type(per) is int  # bytes: an int, not 5204.0
    sizes = [forward_batch_size(model, sample, mb, cap=10_000) for mb in (0.001, 0.1, 1, 10)]
    assert sizes[0] == 4 and all(s % 4 == 0 for s in sizes)
    assert sizes == sorted(sizes) and sizes[-1] > sizes[1]
    assert forward_batch_size(model, sample, 1e6) == 1024  # the CPU cap
    assert zo_block_size(1, 256) == 64 and zo_block_size(500, 256) == 500


class OwnForwardConv(nn.Conv2d):
    """A Conv2d subclass with a forward of its own: the lean path must leave it alone."""

    def forward(self, x):
        return super().forward(x) * 1.5


def test_lean_second_order_gives_the_exact_hessian_and_restores_the_model():
    """Strided, grouped, dilated and 1×1 convolutions (with and without bias), batch norm
    with non-trivial running statistics and affine parameters, a smooth activation: the
    Hessian through the lean layers equals torch.autograd.functional.hessian of the
    unpatched model, and the model carries no patch afterwards."""
    from curvmia.curvature import input_hessian, lean_second_order

    torch.manual_seed(8)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.Softplus(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2),
        nn.BatchNorm2d(4, affine=False),
        nn.Softplus(),
        OwnForwardConv(4, 6, 1),
        nn.Conv2d(6, 6, (2, 3), stride=(1, 2), padding=(1, 0)),
        nn.Tanh(),
        nn.Flatten(),
        nn.LazyLinear(5),
    ).double()
    model(torch.zeros(1, 2, 7, 7, dtype=torch.float64))  # materialise the lazy layer
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    y = torch.tensor([0, 3, 4])
    with lean_second_order(model):
        patched = sorted(
            (i, name)
            for i, m in enumerate(model)
            for name in ("_conv_forward", "forward")
            if name in m.__dict__
        )
    assert patched == [
        (0, "_conv_forward"),
        (1, "forward"),
        (3, "_conv_forward"),
        (4, "forward"),
        (7, "_conv_forward"),
    ]
    assert not any("_conv_forward" in m.__dict__ or "forward" in m.__dict__ for m in model)
    ref = autograd_hessians(model, x, y)
    np.testing.assert_allclose(input_hessian(model, x, y).numpy(), ref, rtol=1e-9, atol=1e-12)
    # the lean forward computes the same function
    with lean_second_order(model):
        lean_out = model(x)
        lean_single = model[0](x[0])  # an unbatched (C, H, W) input: the plain convolution
        x4 = torch.randn(4, 5, 5, dtype=torch.float64)
        lean_biased = model[3](x4)  # unbatched through a convolution with a bias
    np.testing.assert_allclose(lean_out.detach().numpy(), model(x).detach().numpy(), rtol=1e-12)
    torch.testing.assert_close(lean_single, model[0](x[:1])[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(lean_biased, model[3](x4[None])[0], rtol=1e-12, atol=1e-14)


class FakeClock:
    """Stands in for curvature's ``time`` module: a perf_counter that only forwards advance,
    so the timings below are exact whatever else the machine is doing."""

    def __init__(self):
        self.now = 0.0
        self.reads = 0

    def perf_counter(self) -> float:
        self.reads += 1
        if self.reads > 100_000:  # a timing loop that never ends: fail now, not at a timeout
            raise RuntimeError("the clock was read 100,000 times")
        return self.now


class SleepyForward(nn.Module):
    """A 'model' whose forward of n images takes 1 ms + 0.1 ms per image up to 16 images and
    2 ms per image beyond: 16 is the fastest batch (12.3k images/s against ≤ 11.4k / 500)."""

    def __init__(self, clock: FakeClock):
        super().__init__()
        self.calls: list[int] = []
        self.layouts: list[bool] = []  # each batch: channels_last (and not plain contiguous)
        self.clock = clock

    def forward(self, x):
        n = x.shape[0]
        self.calls.append(n)
        cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        self.layouts.append(cl and not x.is_contiguous())
        self.clock.now += 0.001 + 0.0001 * n if n <= 16 else 0.002 * n
        return x.flatten(1)[:, :3]


def test_tune_forward_batch_picks_the_fastest_and_stops_early(monkeypatch):
    from curvmia import curvature
    from curvmia.curvature import tune_forward_batch

    clock = FakeClock()
    monkeypatch.setattr(curvature, "time", clock)
    model = SleepyForward(clock)
    best = tune_forward_batch(model, torch.zeros(1, 4, 4), 4096, min_seconds=0.01)
    assert best == 16
    # 4, 8, 16 improve; 32 and 64 are slower (patience 2): 128 and larger are never tried
    assert sorted(set(model.calls)) == [4, 8, 16, 32, 64]
    # a limit that is not a power of two is itself a candidate, and nothing goes past it
    model = SleepyForward(clock)
    assert tune_forward_batch(model, torch.zeros(1, 4, 4), 12, min_seconds=0.01) == 12
    assert sorted(set(model.calls)) == [4, 8, 12]


def test_forward_batch_chooser_finds_the_fastest_size_online():
    from curvmia.curvature import ForwardBatchChooser

    rate = {4: 100.0, 8: 200.0, 16: 300.0, 32: 400.0, 64: 350.0, 128: 390.0}  # images/s
    ch = ForwardBatchChooser(list(rate), 8, explore_every=4)
    used = []
    for _ in range(400):
        size = ch.next()
        used.append(size)
        ch.record(size, size, size / rate[size])
    assert ch.best == 32
    # after it settled, 3 of 4 forward batches run the best size, the 4th a neighbour
    tail = used[-200:]
    assert tail.count(32) == 150 and set(tail) == {16, 32, 64}
    # a ragged batch (fewer images than its size) is not a rate of that size
    ch.record(64, 10, 1e-9)
    assert ch.best == 32 and max(ch.rates[64]) == 350.0
    # one slow timing of the best does not dethrone it (the best of its recent window)...
    ch.record(32, 32, 32 / 50.0)
    assert ch.best == 32
    # ...but a lasting slowdown does: the window forgets the fast timings
    for _ in range(4):
        ch.record(32, 32, 32 / 50.0)
    assert ch.best == 64  # the fastest size it has measured recently
    rate[32] = 50.0  # and from there it finds 128, which it had never tried
    for _ in range(40):
        size = ch.next()
        ch.record(size, size, size / rate[size])
    assert ch.best == 128
    # near-ties go to the larger size (tolerance 2%)
    ch = ForwardBatchChooser([4, 8], 4)
    ch.record(4, 4, 4 / 100.0)
    ch.record(8, 8, 8 / 99.0)
    assert ch.best == 8
    # a zero or negative duration (a clock that did not advance) is no timing
    ch.record(4, 4, 0.0)
    ch.record(4, 4, -1.0)
    assert ch.best == 8 and list(ch.rates[4]) == [100.0]
    # a rate exactly at the tolerance's edge still counts (r ≥ (1 − tolerance)·top)
    edge = ForwardBatchChooser([4, 8], 4, tolerance=0.5)
    edge.record(4, 4, 4 / 100.0)
    edge.record(8, 8, 8 / 50.0)
    assert edge.rates[8][0] == 50.0 and edge.best == 8
    # exploring from the middle size: the larger neighbour, then the smaller
    mid = ForwardBatchChooser([4, 8, 16], 8, explore_every=1)
    assert [mid.next() for _ in range(4)] == [16, 4, 16, 4]
    # by default every 8th forward batch tries a neighbour (here the larger of 4's)
    default = ForwardBatchChooser([4, 8], 4)
    assert [default.next() for _ in range(16)] == ([4] * 7 + [8]) * 2
    # the job log's line: the choice, then each timed size's best recent rate
    log = ForwardBatchChooser([4, 8, 16], 4)
    log.record(4, 4, 4 / 100.0)
    log.record(8, 8, 8 / 250.4)
    assert log.summary() == "forward batch 8 (recent best images/s by size: 4: 100, 8: 250)"
    with pytest.raises(ValueError, match="^a chooser varies the forward batch: it cannot pad"):
        zo_curvature(
            mlp(), torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), chooser=ch, pad=True
        )


def test_zo_scores_identical_while_the_chooser_varies_the_forward_batch():
    from curvmia.curvature import ForwardBatchChooser

    model, x, y, kw = _keyed_zo_case()
    full = zo_curvature(model, x, y, max_batch=16, **kw)
    for every in (1, 2, 3):  # a neighbour every forward batch, every 2nd, every 3rd
        ch = ForwardBatchChooser([4, 8, 12, 16, 32], 12, explore_every=every)
        assert torch.equal(zo_curvature(model, x, y, chooser=ch, **kw), full), every
        assert sum(1 for r in ch.rates.values() if r) >= 2  # it really ran several sizes
    with pytest.raises(ValueError, match="pad"):
        zo_curvature(model, x, y, chooser=ch, pad=True, **kw)


def test_zo_draws_are_prepared_within_the_group_budget(monkeypatch):
    """The keyed draws are made DRAW_GROUP_BYTES at a time (at least one forward batch's
    pairs), with a fixed max_batch and with a chooser (whose largest size is the bound)."""
    from curvmia import curvature
    from curvmia.curvature import ForwardBatchChooser

    model, x, y, kw = _keyed_zo_case()
    full = zo_curvature(model, x, y, **kw)
    row_bytes = 3 * x[0].numel() * x.element_size()  # r_v, r_u and x of one pair
    calls = []
    real = curvature.keyed_rademacher

    def spy(keys, stream, shape, dtype):
        calls.append(len(keys) // 2)  # r_v rows then r_u rows: pairs in this group
        return real(keys, stream, shape, dtype)

    monkeypatch.setattr(curvature, "keyed_rademacher", spy)
    monkeypatch.setattr(curvature, "DRAW_GROUP_BYTES", 5 * 8 * row_bytes)  # 5 batches of 8
    for how in ({"max_batch": 32}, {"chooser": ForwardBatchChooser([16, 32], 16)}):
        calls.clear()
        assert torch.equal(zo_curvature(model, x, y, **how, **kw), full)
        # 64·3 pairs, 40 per group (5 forward batches of 32 images = 8 pairs each)
        assert calls == [40, 40, 40, 40, 32], how
    monkeypatch.setattr(curvature, "DRAW_GROUP_BYTES", 0)  # one forward batch's pairs
    calls.clear()
    zo_curvature(model, x, y, chooser=ForwardBatchChooser([16, 32], 16), **kw)
    assert calls == [8] * 24


def test_fold_batchnorm_same_function_original_untouched():
    from torch import nn

    from curvmia.curvature import fold_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.3, 3.0)
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 0.5)
    model.double().eval()  # folded in the dtype it scores in (scoring casts first)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, pairs = fold_batchnorm(model)
    assert pairs == 2 and folded is not model
    # the folded convolutions keep the default layout unless channels_last is asked for
    kernels = [p for p in folded.parameters() if p.dim() == 4]
    assert len(kernels) == 2 and all(p.is_contiguous() for p in kernels)
    last = [p for p in fold_batchnorm(model, channels_last=True)[0].parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in last)
    assert not any(p.is_contiguous() for p in last)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(16, 3, 8, 8, dtype=torch.float64)
    # reference: the eval-mode BatchNorm written out, on the unfolded layers
    h = x
    for conv, bn in ((model[0], model[1]), (model[3], model[4])):
        h = torch.nn.functional.conv2d(
            h,
            conv.weight.double(),
            None if conv.bias is None else conv.bias.double(),
            conv.stride,
            conv.padding,
        )
        rm, rv = bn.running_mean.double(), bn.running_var.double()
        h = (h - rm[:, None, None]) / torch.sqrt(rv[:, None, None] + bn.eps)
        h = torch.relu(h * bn.weight.double()[:, None, None] + bn.bias.double()[:, None, None])
    ref = h.flatten(1) @ model[7].weight.double().T + model[7].bias.double()
    torch.testing.assert_close(folded(x), ref, rtol=1e-10, atol=1e-12)
    # second order through the folded graph (lean convolutions inside torch.fx): the exact
    # input-Hessian traces of the original model
    from curvmia.curvature import exact_hessian_trace

    y = torch.tensor([0, 1, 2, 3])
    for square in (False, True):
        torch.testing.assert_close(
            exact_hessian_trace(folded, x[:4], y, square=square),
            exact_hessian_trace(model, x[:4], y, square=square),
            rtol=1e-9,
            atol=1e-12,
        )
    for k, v in model.state_dict().items():  # statistics and weights of the original
        assert torch.equal(v, before[k]), k
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # training mode, no BatchNorm, or untraceable control flow: the model itself, 0 pairs
    assert fold_batchnorm(model.train())[0] is model and fold_batchnorm(model)[1] == 0
    model.eval()
    plain = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    assert fold_batchnorm(plain) == (plain, 0)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
                x = -x
            return self.bn(self.conv(x))

    branchy = Branchy().eval()
    assert fold_batchnorm(branchy) == (branchy, 0)


def test_tune_forward_batch_times_each_size_long_enough_in_the_layout_asked(monkeypatch):
    """Each timing is one warm-up forward, then forwards until min_seconds have passed (at
    least two); a second round times every size tried again.  Batches are channels_last
    only when asked, and only for images."""
    from curvmia import curvature
    from curvmia.curvature import tune_forward_batch

    clock = FakeClock()
    monkeypatch.setattr(curvature, "time", clock)
    model = SleepyForward(clock)
    assert tune_forward_batch(model, torch.zeros(3, 4, 4), 64, min_seconds=0.01) == 16
    # forward costs (ms) 1.4, 1.8, 2.6, 64, 128: forwards needed to pass 10 ms
    timed = {4: 8, 8: 6, 16: 4, 32: 2, 64: 2}
    one_round = [size for size, k in timed.items() for _ in range(1 + k)]
    assert model.calls == one_round * 2
    assert not any(model.layouts)
    model = SleepyForward(clock)
    tune_forward_batch(model, torch.zeros(3, 4, 4), 8, channels_last=True, min_seconds=0.01)
    assert model.layouts and all(model.layouts)
    model = SleepyForward(clock)  # a flat feature vector has no image layout
    tune_forward_batch(model, torch.zeros(48), 8, channels_last=True, min_seconds=0.01)
    assert model.calls and not any(model.layouts)
    # a timing stops as soon as min_seconds have passed: forwards of exactly 0.25 s (exact in
    # binary) reach 0.75 s after three, and a fourth is not run
    calls: list[int] = []

    def quarter(xb):
        calls.append(xb.shape[0])
        clock.now += 0.25
        return xb

    clock.now = 0.0
    tune_forward_batch(quarter, torch.zeros(3, 4, 4), 4, min_seconds=0.75, rounds=1)
    assert calls == [4] * 4  # one warm-up, three timed


def test_forward_batch_size_counts_activations_and_four_perturbed_copies():
    """Per image: its activations plus the four perturbed copies x±v±u of its input; the
    default cap is 1024 images on the CPU and 4096 elsewhere (meta stands in for a GPU)."""
    from curvmia.curvature import forward_batch_size

    model, sample = bn_cnn(), torch.zeros(2, 6, 6)
    per = 4 * (5 * 216 + 216 + 5) + 4 * (2 * 6 * 6 * 4)  # activations + 4 float32 copies
    for mb in (0.5, 1, 3):
        assert forward_batch_size(model, sample, mb, cap=10_000) == int(mb * 2**20 // per) // 4 * 4
    meta = nn.Sequential(nn.Flatten(), nn.Linear(72, 5)).to("meta")
    assert forward_batch_size(meta, torch.zeros(2, 6, 6, device="meta"), 1e6) == 4096
    assert forward_batch_size(meta.to_empty(device="cpu"), sample, 1e6) == 1024


def test_keyed_rademacher_on_the_keys_device_and_for_large_images():
    """4800 signs (75 words: more than one word per 65 elements) against the plain-integer
    reference; keys on another device (meta) give signs there, stream given as int or tensor."""
    from curvmia.curvature import keyed_rademacher, sample_keys

    words = [7, 1]
    keys = sample_keys(words, torch.tensor([0, 3]))
    got = keyed_rademacher(keys, torch.tensor([2, 5]), (3, 40, 40), torch.float32)
    for row, (i, stream) in enumerate([(0, 2), (3, 5)]):
        np.testing.assert_array_equal(
            got[row].reshape(-1).numpy(), ref_signs(words, i, stream, 4800)
        )
    # a stream tensor of another integer type gives the same signs
    same = keyed_rademacher(
        keys, torch.tensor([2, 5], dtype=torch.int32), (3, 40, 40), torch.float32
    )
    assert torch.equal(same, got)
    for streams in (torch.tensor([2, 5]), 2):
        far = keyed_rademacher(keys.to("meta"), streams, (3, 4, 4), torch.float32)
        assert far.device.type == "meta" and far.shape == (2, 3, 4, 4)


def test_zo_forward_batches_hold_at_most_max_batch_images():
    """Whole quadruples x±v±u per forward: max_batch // 4 pairs (at least one), the last
    batch ragged; without max_batch everything in one forward."""
    model = mlp()
    x = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    sizes: list[int] = []

    def fwd(batch):
        sizes.append(batch.shape[0])
        return model(batch)

    for max_batch, want in ((4, [4] * 10), (2, [4] * 10), (12, [12, 12, 12, 4]), (None, [40])):
        sizes.clear()
        zo_curvature(model, x, y, niter=2, seed=3, max_batch=max_batch, fwd=fwd)
        assert sizes == want, max_batch


def test_hutchinson_trace_and_repeated_products_against_autograd():
    """hutchinson_trace passes the key on (its values are hutchinson's keyed ones), and the
    products of one _hvp_fn graph, batched or not, called again and again, equal H·r from
    torch.autograd.functional.hessian."""
    from curvmia.curvature import _hvp_fn, hutchinson, hutchinson_trace

    model = tiny_cnn()
    torch.manual_seed(4)
    x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 4, 2, 1])
    kw = {"nprobes": 3, "seed": [4, 1], "index": torch.tensor([5, 6, 7, 8])}
    tr, tr2 = hutchinson(model, x, y, **kw)
    assert torch.equal(hutchinson_trace(model, x, y, **kw), tr)
    assert torch.equal(hutchinson_trace(model, x, y, square=True, **kw), tr2)
    hess = autograd_hessians(model, x, y)  # (4, 36, 36)
    rs = torch.randn(3, 4, 1, 6, 6, dtype=torch.float64)
    ref = np.einsum("bij,kbj->kbi", hess, rs.reshape(3, 4, 36).numpy()).reshape(rs.shape)
    _, hvp = _hvp_fn(model, x, y)
    for batched in (True, True, False, True):
        np.testing.assert_allclose(hvp(rs, batched=batched).numpy(), ref, rtol=1e-9, atol=1e-12)


def test_zo_tells_the_chooser_each_forward_batchs_size_images_and_seconds(monkeypatch):
    """The chooser learns from what really ran: the size it asked for, the images in that
    batch (four per pair) and the forward's own time (a fake clock: exact)."""
    from curvmia import curvature
    from curvmia.curvature import ForwardBatchChooser

    clock = FakeClock()
    clock.now = 1000.0
    monkeypatch.setattr(curvature, "time", clock)
    model = SleepyForward(clock)
    told: list[tuple[int, int, float]] = []

    class Recording(ForwardBatchChooser):
        def record(self, size, images, seconds):
            told.append((size, images, seconds))
            super().record(size, images, seconds)

    ch = Recording([8, 16], 16, explore_every=2)
    x, y = torch.zeros(5, 1, 4, 4), torch.zeros(5, dtype=torch.long)
    zo_curvature(model, x, y, niter=3, seed=1, chooser=ch)
    assert [n for _, n, _ in told] == model.calls and sum(model.calls) == 4 * 5 * 3
    assert {s for s, _, _ in told} == {8, 16}
    for size, n, seconds in told:
        assert n <= size and n % 4 == 0
        assert seconds == pytest.approx(0.001 + 0.0001 * n, abs=1e-9)


def test_hutchinson_default_probe_count_and_trace_pass_their_draws_through():
    from curvmia.curvature import hutchinson, hutchinson_trace

    torch.manual_seed(0)
    model = mlp().double().eval()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    keyed = hutchinson(model, x, y, seed=5)
    assert all(
        torch.equal(a, b) for a, b in zip(keyed, hutchinson(model, x, y, seed=5, nprobes=10))
    )
    assert not torch.equal(keyed[0], hutchinson(model, x, y, seed=5, nprobes=11)[0])
    # the generator given reaches the draws (not the global generator)
    ref = hutchinson(model, x, y, nprobes=3, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    got = hutchinson_trace(model, x, y, nprobes=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(got, ref[0])
    sq = hutchinson_trace(
        model, x, y, nprobes=3, square=True, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(sq, ref[1])


def test_lean_conv_takes_the_input_only_backward_for_batches_only():
    """A batch goes through the lean convolution (its backward builds no weight gradient);
    an unbatched (C, H, W) input through torch's own."""
    from curvmia.curvature import _lean_conv

    conv = nn.Conv2d(2, 3, 3)
    x4 = torch.randn(2, 2, 5, 5, requires_grad=True)
    x3 = torch.randn(2, 5, 5, requires_grad=True)
    assert type(_lean_conv(conv, x4, conv.weight, conv.bias).grad_fn).__name__ == (
        "_ConvInputGradBackward"
    )
    assert (
        "ConvInputGrad" not in type(_lean_conv(conv, x3, conv.weight, conv.bias).grad_fn).__name__
    )


def test_every_estimator_runs_on_the_inputs_device():
    """Model and batch on another device (meta stands in for a GPU here): every estimator,
    keyed or drawn from a CPU generator, with or without forward batches, builds its draws,
    keys, indices and results there; nothing is left on the CPU."""
    from curvmia.curvature import hutchinson, input_hessian

    model = bn_cnn().to("meta")
    x = torch.zeros(3, 2, 6, 6, device="meta")
    y = torch.zeros(3, dtype=torch.long, device="meta")
    gen = torch.Generator().manual_seed(0)
    outs = {
        "zo keyed": zo_curvature(model, x, y, niter=2, seed=3),
        "zo keyed, batches": zo_curvature(model, x, y, niter=2, seed=3, max_batch=8, pad=True),
        "zo generator": zo_curvature(model, x, y, niter=2, generator=gen),
        "input hessian": input_hessian(model, x, y),
    }
    for kind, kw in (("keyed", {"seed": 3}), ("generator", {"generator": gen})):
        tr, tr2 = hutchinson(model, x, y, nprobes=2, **kw)
        outs[f"hutchinson {kind}"], outs[f"hutchinson² {kind}"] = tr, tr2
    for name, out in outs.items():
        assert out.device.type == "meta" and out.dtype == torch.float32, name
        want = (3, 72, 72) if name == "input hessian" else (3,)
        assert out.shape == want, name


def test_rademacher_draws_are_the_generators_bits_in_the_dtype_asked():
    """±1 = 2·randint(0, 2) − 1 from the generator given, in the dtype asked (the ZO and
    Hutchinson draws then stay in x's dtype)."""
    from curvmia.curvature import rademacher

    for dtype in (torch.float64, torch.bfloat16):
        r = rademacher((5, 3), torch.Generator().manual_seed(4), dtype)
        ref = torch.randint(0, 2, (5, 3), generator=torch.Generator().manual_seed(4)) * 2 - 1
        assert r.dtype == dtype and torch.equal(r.long(), ref)


def test_zo_defaults_are_the_papers_h_and_niter():
    """h = 1e-3 and niter = 10 unless given (the paper's settings)."""
    model = mlp()
    torch.manual_seed(5)
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    got = zo_curvature(model, x, y, seed=11)
    assert torch.equal(got, zo_curvature(model, x, y, h=1e-3, niter=10, seed=11))
    assert not torch.equal(got, zo_curvature(model, x, y, h=1e-3, niter=11, seed=11))


def test_hutchinson_trace_default_probe_count_is_ten():
    from curvmia.curvature import hutchinson, hutchinson_trace

    model = mlp()
    torch.manual_seed(6)
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    want = hutchinson(model, x, y, seed=5, nprobes=10)
    assert torch.equal(hutchinson_trace(model, x, y, seed=5), want[0])
    assert torch.equal(hutchinson_trace(model, x, y, seed=5, square=True), want[1])


def test_estimators_refuse_no_iterations_or_probes_with_a_clear_message():
    from curvmia.curvature import hutchinson

    model, x, y = mlp(), torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.zeros(2).long()
    with pytest.raises(ValueError, match=r"^niter must be >= 1, got 0$"):
        zo_curvature(model, x, y, niter=0, seed=1)
    with pytest.raises(ValueError, match=r"^nprobes must be >= 1, got -2$"):
        hutchinson(model, x, y, nprobes=-2, seed=1)


def test_keys_of_any_integer_index_type_and_the_byte_order_check(monkeypatch):
    """int32 sample indices give the int64 indices' keys; a big-endian machine is refused
    by name (the sign table reads bytes little-endian first)."""
    import sys

    from curvmia import curvature
    from curvmia.curvature import keyed_rademacher, sample_keys

    idx = torch.tensor([0, 5, 2**20 + 3])
    want = sample_keys([4, 2], idx)
    assert torch.equal(sample_keys([4, 2], idx.to(torch.int32)), want)
    monkeypatch.setattr(curvature.sys, "byteorder", "big")
    assert sys.byteorder == "big"
    with pytest.raises(RuntimeError, match="^keyed_rademacher needs a little-endian machine$"):
        keyed_rademacher(want, 0, (4,), torch.float32)


def test_hvp_products_take_the_documented_backward_passes(monkeypatch):
    """hvp runs one backward per product (the default), one vectorised backward for
    ``batched`` stacks of two or more, and frees the graph in the last product with
    ``last``; hutchinson uses the loop with ``last``, input_hessian the vectorised one."""
    from curvmia.curvature import _hvp_fn, hutchinson, input_hessian

    model = mlp()
    torch.manual_seed(7)
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    rs = torch.randn(3, 4, 1, 4, 4, dtype=torch.float64)
    calls: list[tuple[bool, bool]] = []  # (is_grads_batched, retain_graph) per product
    real = torch.autograd.grad

    def spy(outputs, inputs, grad_outputs=None, **kw):
        if grad_outputs is not None:
            calls.append((kw.get("is_grads_batched", False), kw.get("retain_graph", False)))
        return real(outputs, inputs, grad_outputs=grad_outputs, **kw)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    _, hvp = _hvp_fn(model, x, y)
    plain = hvp(rs)
    assert calls == [(False, True)] * 3
    calls.clear()
    torch.testing.assert_close(hvp(rs, batched=True), plain, rtol=1e-12, atol=1e-14)
    assert calls == [(True, True)]
    calls.clear()
    torch.testing.assert_close(hvp(rs[:2], batched=True), plain[:2], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(hvp(rs[:1], batched=True), plain[:1], rtol=1e-12, atol=1e-14)
    assert calls == [(True, True), (False, True)]
    calls.clear()
    torch.testing.assert_close(hvp(rs, last=True), plain, rtol=0, atol=0)
    assert calls == [(False, True), (False, True), (False, False)]
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        hvp(rs[:1])
    calls.clear()
    hutchinson(model, x, y, nprobes=3, seed=1)
    assert calls == [(False, True), (False, True), (False, False)]
    calls.clear()
    input_hessian(model, x, y)
    assert calls == [(True, True)]


def test_tune_forward_batch_without_tolerance_takes_the_fastest(monkeypatch):
    from curvmia import curvature
    from curvmia.curvature import tune_forward_batch

    clock = FakeClock()
    monkeypatch.setattr(curvature, "time", clock)
    model = SleepyForward(clock)
    assert tune_forward_batch(model, torch.zeros(1, 4, 4), 64, tolerance=0.0) == 16


def test_candidate_batches_double_from_four_and_end_at_the_cap():
    from curvmia.curvature import candidate_batches

    assert candidate_batches(36) == [4, 8, 16, 32, 36]
    assert candidate_batches(9) == [4, 8, 9]
    assert candidate_batches(4) == [4]
    assert candidate_batches(64) == [4, 8, 16, 32, 64]


def test_forward_batch_chooser_remembers_four_timings_per_size_by_default():
    from curvmia.curvature import ForwardBatchChooser

    ch = ForwardBatchChooser([4, 8], 8)
    for _ in range(6):
        ch.record(8, 8, 8 / 400.0)
    ch.record(4, 4, 4 / 300.0)
    for _ in range(3):
        ch.record(8, 8, 8 / 50.0)
    assert ch.best == 8  # one fast timing of 8 is still among its last four
    ch.record(8, 8, 8 / 50.0)
    assert ch.best == 4 and list(ch.rates[8]) == [50.0] * 4


def test_activation_bytes_are_at_least_the_input():
    """A model whose activations are smaller than its input counts the input (its four
    perturbed copies are in memory anyway), in bytes."""
    from curvmia.curvature import activation_bytes, forward_batch_size

    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).eval()
    sample = torch.zeros(3, 8, 8)
    got = activation_bytes(model, sample)
    assert got == 3 * 8 * 8 * 4 and type(got) is int
    per = got + 4 * 3 * 8 * 8 * 4
    assert forward_batch_size(model, sample, 8 * per / 2**20, cap=64) == 8
    assert forward_batch_size(model, sample, np.nextafter(8 * per / 2**20, 0), cap=64) == 4


def test_lean_batchnorm_keeps_the_plain_layers_dtype_for_mixed_precision():
    """A bfloat16 batch through a float32 BatchNorm: the lean affine map gives bfloat16 as
    torch's own batch norm does (statistics and affine parameters cast to the input's dtype)."""
    from curvmia.curvature import lean_second_order

    torch.manual_seed(3)
    bn = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 4, 4).bfloat16()
    plain = bn(x)
    with lean_second_order(bn):
        lean = bn(x)
    assert plain.dtype == lean.dtype == torch.bfloat16
    torch.testing.assert_close(lean.float(), plain.float(), rtol=0.02, atol=0.03)


def test_fold_batchnorm_counts_only_folded_pairs_and_leaves_the_original_trainable():
    """A BatchNorm after a pooling layer is no pair: it stays, and the count is the pairs
    folded; the copy's parameters are frozen, the original's are not (it shares no module
    with the copy); a model whose only BatchNorm follows no convolution comes back as is."""
    from curvmia.curvature import fold_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3)),
        nn.AvgPool2d(2),
        nn.BatchNorm2d(3),
        nn.Flatten(),
        nn.Linear(12, 2),
    ).eval()
    folded, pairs = fold_batchnorm(model)
    assert pairs == 1
    assert sum(type(m) is nn.BatchNorm2d for m in folded.modules()) == 1
    assert not any(p.requires_grad for p in folded.parameters())
    assert all(p.requires_grad for p in model.parameters())
    x = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-6)
    lone = nn.Sequential(nn.AvgPool2d(2), nn.BatchNorm2d(1), nn.Flatten()).eval()
    assert fold_batchnorm(lone) == (lone, 0)


@pytest.mark.parametrize("variant", ["paper", "clean"])
def test_zo_engine_equals_the_reference_form_bit_for_bit(variant):
    """The batched engine is the paper's estimator as written (zo_curvature_reference): the
    same values on the same draws, keyed or from a generator, for any forward batching, the
    paper variant's float32 model and the clean variant's float64 one."""
    from curvmia.curvature import ForwardBatchChooser, zo_curvature_reference

    dtype = torch.float32 if variant == "paper" else torch.float64
    model = bn_cnn(dtype)
    torch.manual_seed(5)
    x = torch.randn(9, 2, 6, 6, dtype=dtype)
    y = torch.randint(0, 5, (9,))
    kw = {"h": 1e-3, "niter": 3, "seed": [7, 1, 0, 1], "index": torch.arange(20, 29)}
    want = zo_curvature_reference(model, x, y, **kw)
    assert want.dtype == dtype and (want >= 0).all() and (want > 0).sum() >= 5
    engines = (
        {},
        {"max_batch": 8},
        {"max_batch": 20, "pad": True, "fwd": model},
        {"chooser": ForwardBatchChooser([4, 8, 16], 8, explore_every=2)},
    )
    for how in engines:
        assert torch.equal(zo_curvature(model, x, y, **how, **kw), want), how
    # generator draws: the legacy order (per iteration r_v, then r_u), the same in both
    gen = {"h": 1e-3, "niter": 3}
    want = zo_curvature_reference(model, x, y, generator=torch.Generator().manual_seed(3), **gen)
    got = zo_curvature(model, x, y, max_batch=12, generator=torch.Generator().manual_seed(3), **gen)
    assert torch.equal(got, want)
    # the reference differs with other draws or another h (it is not a constant)
    other = zo_curvature_reference(model, x, y, **{**kw, "seed": [7, 1, 0, 0]})
    assert not torch.equal(other, want) and not torch.equal(
        zo_curvature_reference(model, x, y, **{**kw, "h": 2e-3}), zo_curvature(model, x, y, **kw)
    )


def test_zo_reference_on_one_image_is_its_row_of_a_batch():
    """A lone image is duplicated for its forward (the batched kernels), in the reference too."""
    from curvmia.curvature import zo_curvature_reference

    model, x, y, kw = _keyed_zo_case()
    full = zo_curvature_reference(model, x[:4], y[:4], index=torch.arange(4), **kw)
    one = zo_curvature_reference(model, x[2:3], y[2:3], index=torch.tensor([2]), **kw)
    assert torch.equal(one, full[2:3])
