"""timm registration of the CIFAR ResNets, deterministic seeded training, checkpoints."""

import numpy as np
import pytest
import timm
import torch

from curvmia.checkpoint import load_checkpoint, save_checkpoint
from curvmia.identity import train_hash
from curvmia.models import build_model, check_arch
from curvmia.train import TrainData, train_model

CFG = {
    "arch": "cifar_resnet",
    "model_kwargs": {"width": 4, "layers": [1]},
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 5e-4,
    "milestones": [0.5],
    "gamma": 0.1,
    "pad": 1,
    "flip": True,
    "seed": 0,
}


def test_cifar_resnet18_is_registered_with_the_cifar_stem():
    m = timm.create_model("cifar_resnet18", num_classes=10)
    stem = m.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(x, torch.nn.MaxPool2d) for x in m.modules())
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # the standard CIFAR ResNet-18 has 11,173,962 parameters with 10 classes
    assert sum(p.numel() for p in m.parameters()) == 11_173_962


def test_stock_timm_models_build_the_same_way():
    m = build_model("resnet10t", num_classes=7, in_chans=1)
    assert m.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match="train.arch"):
        check_arch("no_such_net")


def _data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 1, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, 64).astype(np.int64)
    return x, y


def _train(seed):
    x, y = _data()
    return train_model(
        TrainData(x[:48], y[:48], x[48:], y[48:], np.array([0.5]), np.array([0.25]), 3),
        cfg=CFG,
        seed=seed,
        device=torch.device("cpu"),
        log=lambda s: None,
    )


def test_training_is_deterministic_on_cpu():
    (m1, s1), (m2, s2), (m3, _) = _train(1), _train(1), _train(2)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert any(not torch.equal(a, b) for a, b in zip(m1.parameters(), m3.parameters()))
    assert s1["train_acc"] == s2["train_acc"] and 0 <= s1["test_acc"] <= 1


def test_checkpoint_round_trip_weights_only(tmp_path):
    model, stats = _train(1)
    meta = {
        "arch": CFG["arch"],
        "model_kwargs": CFG["model_kwargs"],
        "num_classes": 3,
        "in_chans": 1,
        "train_hash": train_hash(CFG),
        **stats,
    }
    save_checkpoint(tmp_path / "m.pt", model, meta)
    loaded, back = load_checkpoint(tmp_path / "m.pt")
    assert back["train_hash"] == train_hash(CFG) and back["test_acc"] == stats["test_acc"]
    x = torch.randn(4, 1, 8, 8)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not loaded.training


def test_train_hash_depends_only_on_the_recipe():
    assert train_hash(CFG) == train_hash(dict(reversed(list(CFG.items()))))
    assert train_hash(CFG) != train_hash({**CFG, "epochs": 3})
