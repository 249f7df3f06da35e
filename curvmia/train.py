"""Shadow and target training: a short, flat SGD loop over a device-resident subset.

The recipe (epochs, lr, momentum, weight decay, batch size, lr milestones as
fractions of training) comes from the ``train`` section of the config.  The
checkpoint stores weights only, plus the architecture, a hash of the training
sub-config and the accuracies, and is read back with ``weights_only=True``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import normalize, random_crop_flip, to_float
from .io import atomic_path, config_hash
from .models import build_model


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``/``cuda`` force one."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was requested but no CUDA device is available")
    return torch.device(preference)


def model_seed(base_seed: int, row: int) -> int:
    """Independent 63-bit seed for mask row ``row`` derived from the config seed."""
    return int(np.random.SeedSequence([base_seed, row]).generate_state(1, np.uint64)[0] >> 1)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in eval mode over normalised inputs ``x``."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
    return correct / max(len(x), 1)


def train_model(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    num_classes: int,
    cfg: dict,
    seed: int,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, dict]:
    """Train one model on uint8 images with the recipe ``cfg``; return it and its stats."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(cfg["arch"], num_classes, train_images.shape[1], cfg.get("model_kwargs"))
    model.to(device)
    x_u8 = torch.from_numpy(train_images).to(device)
    y = torch.from_numpy(train_labels).to(device)
    n = len(y)
    bs = min(cfg["batch_size"], n)
    steps_per_epoch = n // bs  # the last incomplete batch is dropped
    epochs = cfg["epochs"]
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        weight_decay=cfg["weight_decay"],
        nesterov=cfg.get("nesterov", False),
    )
    milestones = sorted({round(f * epochs) for f in cfg["milestones"]})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg["gamma"])
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs]
            xb = random_crop_flip(to_float(x_u8[idx]), cfg["pad"], cfg["flip"], gen)
            xb = normalize(xb, mean, std)
            out = model(xb)
            loss = loss_fn(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(idx)
            tot_correct += (out.argmax(1) == y[idx]).sum().item()
            seen += len(idx)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        log(
            f"epoch {epoch + 1}/{epochs} loss {tot_loss / seen:.4f} "
            f"train_acc(aug) {tot_correct / seen:.4f} lr {lr:.4g} "
            f"elapsed {time.perf_counter() - t0:.1f}s"
        )
    x_tr = normalize(to_float(x_u8), mean, std)
    x_te = normalize(to_float(torch.from_numpy(test_images).to(device)), mean, std)
    y_te = torch.from_numpy(test_labels).to(device)
    stats = {
        "train_acc": accuracy(model, x_tr, y),
        "test_acc": accuracy(model, x_te, y_te),
        "n_train": int(n),
        "seconds": time.perf_counter() - t0,
    }
    log(f"done: train_acc {stats['train_acc']:.4f} test_acc {stats['test_acc']:.4f}")
    return model, stats


def train_hash(cfg: dict) -> str:
    """Hash of the training sub-config: attack or scoring edits never change it."""
    return config_hash(cfg)


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict) -> None:
    """Weights plus plain metadata, written atomically (loadable with weights_only=True)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"state_dict": state, **meta}, tmp)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint in eval mode; return it and the metadata."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    state = ckpt.pop("state_dict")
    model = build_model(ckpt["arch"], ckpt["num_classes"], ckpt["in_chans"], ckpt["model_kwargs"])
    model.load_state_dict(state)
    model.to(device).eval()
    return model, ckpt
