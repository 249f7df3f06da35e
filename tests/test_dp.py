"""DP training (Opacus): per-sample gradients clipped to the bound, Gaussian noise of the
accountant's sigma added, epsilon recomputed independently with Opacus' RDP analysis."""

import math

import numpy as np
import pytest
import torch

from curvmia.checkpoint import load_checkpoint, save_checkpoint
from curvmia.train import TrainData, train_dp_model

DP_CFG = {
    "arch": "cifar_resnet",
    "model_kwargs": {"width": 4, "layers": [1]},
    "optimizer": "rmsprop",
    "epochs": 1,
    "batch_size": 16,
    "lr": 1e-3,
    "milestones": [0.6, 0.8],
    "gamma": 0.1,
    "max_grad_norm": 0.05,  # small: most per-sample gradients get clipped
    "delta": 1e-5,
    "seed": 0,
}


@pytest.fixture(scope="module")
def dp_run():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (90, 1, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, 90).astype(np.int64)
    records = []

    def hook(opt):
        params = [p for p in opt.params if p.requires_grad]
        records.append(
            {
                "grad_sample": [p.grad_sample.detach().clone() for p in params],
                "summed": [p.summed_grad.detach().clone() for p in params],
                "grad": [p.grad.detach().clone() for p in params],
                "ebs": opt.expected_batch_size,
                "sigma": opt.noise_multiplier,
                "C": opt.max_grad_norm,
            }
        )

    model, stats = train_dp_model(
        TrainData(x, y, x[70:], y[70:], np.array([0.5]), np.array([0.25]), num_classes=3),
        cfg=DP_CFG,
        epsilon=3.0,
        seed=1,
        device=torch.device("cpu"),
        indices=np.arange(70),
        step_hook=hook,
        log=lambda s: None,
    )
    return model, stats, records


def test_per_sample_gradients_are_clipped(dp_run):
    _, _, records = dp_run
    """The bound is the config's max_grad_norm: each step's summed gradient is the sum of
    the per-sample gradients, each scaled to norm ≤ C = max_grad_norm (clipped ones exactly
    to C), computed here from the per-sample gradients."""
    c = DP_CFG["max_grad_norm"]
    clipped = 0
    for r in records:
        assert r["C"] == c
        flat = torch.cat([g.flatten(1) for g in r["grad_sample"]], dim=1).double()  # (B, P)
        norms = flat.norm(dim=1)
        factor = torch.where(norms > c, c / norms, torch.ones_like(norms))
        clipped += int((norms > c).sum())
        summed = torch.cat([s.flatten() for s in r["summed"]]).double()
        torch.testing.assert_close(summed, (flat * factor[:, None]).sum(0), rtol=1e-4, atol=1e-7)
    assert clipped > 0


def test_noise_of_the_accountants_sigma_is_added(dp_run):
    _, stats, records = dp_run
    noise = []
    for r in records:
        summed = torch.cat([s.flatten() for s in r["summed"]])
        grad = torch.cat([g.flatten() for g in r["grad"]])
        noise.append(grad * r["ebs"] - summed)
    noise = torch.cat(noise).double()
    expected = stats["noise_multiplier"] * DP_CFG["max_grad_norm"]
    assert stats["noise_multiplier"] > 0.3
    assert noise.std().item() == pytest.approx(expected, rel=0.08)
    assert abs(noise.mean().item()) < 4 * expected / math.sqrt(len(noise))


def test_epsilon_recomputed_independently(dp_run):
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    _, stats, records = dp_run
    n_batches = math.ceil(70 / DP_CFG["batch_size"])
    assert stats["sample_rate"] == pytest.approx(1 / n_batches)
    assert stats["steps"] == len(records) == DP_CFG["epochs"] * n_batches
    orders = [1 + k / 10.0 for k in range(1, 100)] + list(range(12, 128))
    rdp = compute_rdp(
        q=1 / n_batches, noise_multiplier=records[0]["sigma"], steps=stats["steps"], orders=orders
    )
    eps, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=DP_CFG["delta"])
    assert eps == pytest.approx(stats["epsilon"], rel=0.02)
    assert 3.0 - 0.1 <= eps <= 3.0 + 0.02


def test_dp_checkpoint_round_trip(dp_run, tmp_path):
    model, stats, _ = dp_run
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    meta = {
        "arch": "cifar_resnet",
        "model_kwargs": DP_CFG["model_kwargs"],
        "num_classes": 3,
        "in_chans": 1,
        "dp_groupnorm": True,
        **stats,
    }
    save_checkpoint(tmp_path / "dp.pt", model, meta)
    loaded, back = load_checkpoint(tmp_path / "dp.pt")
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    assert back["epsilon"] == stats["epsilon"]
