"""Shadow and target training: a flat, seeded SGD loop, resumable, GPU-ready; DP-SGD targets.

The recipe (epochs, lr, momentum, weight decay, batch size, lr milestones as
fractions of training, augmentation, and the speed options ``channels_last``,
``amp`` and ``compile``) comes from the ``train`` section of the config.  Data
handling is not part of the recipe: a training subset that fits
(``resident_max_gib``) lives on the device as uint8 and is indexed there;
larger data (ImageNet) is streamed from the memory-mapped array by DataLoader
workers into pinned memory.  Both paths draw the same batches and augment on
the device after the transfer, so they give identical weights on the CPU.

A resume state (weights, optimizer, scheduler, every RNG) is written at epoch
ends to ``<out>.resume.pt``; a rerun after a kill continues from it and
finishes with the weights an uninterrupted run would have had (CPU).  The final
checkpoint stores weights only, plus plain metadata, and is read back with
``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .identity import members_hash
from .io import atomic_path, config_hash
from .models import build_model, count_params, dp_compatible, import_opacus
from .progress import Progress
from .transforms import normalize, random_crop_flip, to_float

RESUME_SUFFIX = ".resume.pt"


def model_seed(base_seed: int, row: int) -> int:
    """Independent 63-bit seed for mask row ``row`` derived from the config seed."""
    return int(np.random.SeedSequence([base_seed, row]).generate_state(1, np.uint64)[0] >> 1)


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Batched RandomResizedCrop back to the input size, one affine resampling per batch.

    Per image: area fraction ~ U(scale), log aspect ~ U(log ratio), the crop's
    side fractions clamped to 1 (instead of torchvision's 10 retries), centre
    uniform inside the image, bilinear.  Draws come from ``generator``.
    """
    b = x.shape[0]
    area = torch.empty(b).uniform_(*scale, generator=generator)
    logr = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - h)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in eval mode over normalised inputs ``x``."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
    return correct / max(len(x), 1)


@torch.no_grad()
def accuracy_u8(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    indices: np.ndarray | None = None,
    batch_size: int = 1024,
    channels_last: bool = False,
) -> float:
    """Top-1 accuracy over uint8 images (possibly memory-mapped), moved in chunks, float32."""
    model.eval()
    idx = np.arange(len(labels)) if indices is None else np.asarray(indices)
    correct = 0
    for i in range(0, len(idx), batch_size):
        sel = idx[i : i + batch_size]
        x = normalize(to_float(torch.from_numpy(np.asarray(images[sel])).to(device)), mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(np.asarray(labels[sel])).to(device)
        correct += (model(x).argmax(1) == y).sum().item()
    return correct / max(len(idx), 1)


class _BatchDataset(torch.utils.data.Dataset):
    """Returns the uint8 images and labels of one batch of indices (DataLoader workers)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batches: list[np.ndarray]):
        self.images, self.labels, self.batches = images, labels, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sel = self.batches[i]
        order = np.argsort(sel, kind="stable")  # read the memmap in file order
        x = np.empty((len(sel), *self.images.shape[1:]), dtype=np.uint8)
        x[order] = self.images[sel[order]]
        return torch.from_numpy(x), torch.from_numpy(np.asarray(self.labels[sel]))


def _resume_key(cfg: dict, seed: int, idx: np.ndarray, identity: dict | None) -> str:
    """Key of a resume state: recipe, seed, the member indices and the checkpoint identity
    (row, data hash): a state made for another subset or dataset is never resumed."""
    ident = {k: v for k, v in (identity or {}).items() if k != "members_hash"}
    return config_hash({"train": cfg, "seed": seed, "members": members_hash(idx), **ident})


def _load_resume(path: Path, device: torch.device, log: Callable[[str], None]) -> dict | None:
    """The resume state at ``path``, or None; a corrupt one is set aside (renamed to
    ``<path>.corrupt``) with a warning, so that training starts afresh instead of failing
    on every retry."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not {"key", "model", "opt", "epoch"} <= state.keys():
            raise ValueError("not a resume state")
        return state
    except Exception as e:  # noqa: BLE001 (any unreadable state is set aside, never fatal)
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        log(
            f"WARNING: {path}: corrupt resume state ({type(e).__name__}: {e}); "
            f"moved to {aside}, training starts afresh"
        )
        return None


def _rng_state(gen: torch.Generator, device: torch.device) -> dict:
    state = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


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
    indices: np.ndarray | None = None,
    resume_path: str | Path | None = None,
    checkpoint_minutes: float = 0.0,
    resident_max_gib: float = 8.0,
    workers: int = 0,
    identity: dict | None = None,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, dict]:
    """Train one model on uint8 images with the recipe ``cfg``; return it and its stats.

    ``indices`` selects the training subset of ``train_images`` (default: all),
    so memory-mapped data is never copied whole.  ``resume_path``: where the
    resume state lives (written after an epoch once ``checkpoint_minutes`` have
    passed since the last one; 0 = every epoch); it is loaded when present and
    made for the same recipe, seed, members and ``identity`` (row, data hash), and
    deleted on success; a corrupt one is set aside with a warning.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    idx_all = np.arange(len(train_labels)) if indices is None else np.asarray(indices)
    n = len(idx_all)
    channels_last = bool(cfg.get("channels_last", False))
    amp = cfg.get("amp", "none")
    model = build_model(cfg["arch"], num_classes, train_images.shape[1], cfg.get("model_kwargs"))
    log(f"model {cfg['arch']} {cfg.get('model_kwargs') or {}}: {count_params(model)} parameters")
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if cfg.get("compile", False) else model
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

    start_epoch = 0
    key = _resume_key(cfg, seed, idx_all, identity)
    resume_path = Path(resume_path) if resume_path else None
    state = None
    if resume_path is not None and resume_path.exists():
        state = _load_resume(resume_path, device, log)
    if state is not None:
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            _set_rng_state(state["rng"], gen, device)
            start_epoch = int(state["epoch"])
            log(f"resumed from {resume_path} after epoch {start_epoch}")
        else:
            log(f"{resume_path}: made for another recipe, seed or subset; starting afresh")

    nbytes = n * int(np.prod(train_images.shape[1:]))
    resident = nbytes <= resident_max_gib * 2**30
    if resident:
        x_dev = torch.from_numpy(np.asarray(train_images[np.sort(idx_all)])).to(device)
        y_dev = torch.from_numpy(np.asarray(train_labels[np.sort(idx_all)])).to(device)
        # position of each subset index inside the sorted resident copy
        pos = np.empty(len(train_labels), dtype=np.int64)
        pos[np.sort(idx_all)] = np.arange(n)
        local_idx = torch.from_numpy(pos[idx_all]).to(device)
    where = f"resident on {device}" if resident else f"streamed by {workers} workers"
    log(f"{n} samples, {nbytes / 2**20:.1f} MiB uint8, {where}")

    def batches_of_epoch() -> list[np.ndarray]:
        perm = torch.randperm(n, generator=gen).numpy()
        return [perm[s * bs : (s + 1) * bs] for s in range(steps_per_epoch)]

    def augment(xb_u8: torch.Tensor) -> torch.Tensor:
        xb = to_float(xb_u8)
        if cfg.get("random_resized_crop", False):
            xb = random_resized_crop(xb, gen)
        xb = random_crop_flip(xb, cfg["pad"], cfg["flip"], gen)
        xb = normalize(xb, mean, std)
        return xb.contiguous(memory_format=torch.channels_last) if channels_last else xb

    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if amp == "bf16"
        else contextlib.nullcontext()
    )
    t0 = time.perf_counter()
    last_save = time.monotonic()
    prog = None
    for epoch in range(start_epoch, epochs):
        model.train()
        batches = batches_of_epoch()
        if prog is None:  # every epoch has the same number of batches
            prog = Progress((epochs - start_epoch) * len(batches), "training", log, unit="batches")
        if resident:
            sel = [local_idx[torch.from_numpy(b).to(device)] for b in batches]
            it = ((x_dev[i], y_dev[i]) for i in sel)
        else:
            loader = torch.utils.data.DataLoader(
                _BatchDataset(train_images, train_labels, [idx_all[b] for b in batches]),
                batch_size=None,
                shuffle=False,
                num_workers=workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
                prefetch_factor=4 if workers > 0 else None,
            )
            it = (
                (xb.to(device, non_blocking=True), yb.to(device, non_blocking=True))
                for xb, yb in loader
            )
        tot_loss = torch.zeros((), device=device)
        tot_correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for xb_u8, yb in it:
            xb = augment(xb_u8)
            with autocast:
                out = fwd(xb)
                loss = loss_fn(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.detach().float() * len(yb)
            tot_correct += (out.detach().argmax(1) == yb).sum()
            seen += len(yb)
            prog.advance()
        lr = opt.param_groups[0]["lr"]
        sched.step()
        if resume_path is not None and epoch + 1 < epochs:
            if time.monotonic() - last_save >= 60.0 * checkpoint_minutes:
                state = {
                    "key": key,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "rng": _rng_state(gen, device),
                }
                with atomic_path(resume_path, suffix=".pt") as tmp:
                    torch.save(state, tmp)
                last_save = time.monotonic()
        log(
            f"epoch {epoch + 1}/{epochs} loss {tot_loss.item() / max(seen, 1):.4f} "
            f"train_acc(aug) {tot_correct.item() / max(seen, 1):.4f} lr {lr:.4g} "
            f"elapsed {time.perf_counter() - t0:.1f}s"
        )
    stats = {
        "train_acc": accuracy_u8(
            model,
            train_images,
            train_labels,
            mean,
            std,
            device,
            idx_all,
            channels_last=channels_last,
        ),
        "test_acc": accuracy_u8(
            model, test_images, test_labels, mean, std, device, channels_last=channels_last
        ),
        "n_train": int(n),
        "seconds": time.perf_counter() - t0,
    }
    log(f"done: train_acc {stats['train_acc']:.4f} test_acc {stats['test_acc']:.4f}")
    if resume_path is not None:
        resume_path.unlink(missing_ok=True)  # intermediate state is temporary
    return model, stats


# ---------------------------------------------------------------- differential privacy


def train_dp_model(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    num_classes: int,
    cfg: dict,
    epsilon: float,
    seed: int,
    device: torch.device,
    indices: np.ndarray | None = None,
    step_hook: Callable[[torch.optim.Optimizer], None] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, dict]:
    """DP-RMSprop (or DP-SGD) target with Opacus: Poisson sampling, per-sample clipping to
    ``cfg['max_grad_norm']``, Gaussian noise whose multiplier the RDP accountant sets so that
    training ends at (``epsilon``, ``cfg['delta']``). No augmentation (docs/method.md: Training
    recipes).

    ``step_hook(optimizer)`` runs after each step, before the gradients are cleared (tests
    read the per-sample, clipped and noised gradients there).
    """
    PrivacyEngine = import_opacus().PrivacyEngine

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    idx = np.arange(len(train_labels)) if indices is None else np.asarray(indices)
    model = build_model(cfg["arch"], num_classes, train_images.shape[1], cfg.get("model_kwargs"))
    log(f"model {cfg['arch']} {cfg.get('model_kwargs') or {}}: {count_params(model)} parameters")
    model = dp_compatible(model).to(device)
    need = len(idx) * int(np.prod(train_images.shape[1:])) * 4
    if need > 16 * 2**30:
        raise ValueError(
            f"dp_sweep: DP training holds its {len(idx)} samples as float32 in memory "
            f"({need / 2**30:.0f} GiB > 16 GiB); use smaller training sets for DP targets"
        )
    x = normalize(to_float(torch.from_numpy(np.asarray(train_images[idx])).to(device)), mean, std)
    y = torch.from_numpy(np.asarray(train_labels[idx])).to(device)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=cfg["batch_size"], generator=gen
    )
    if cfg["optimizer"] == "rmsprop":
        opt = torch.optim.RMSprop(model.parameters(), lr=cfg["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg.get("momentum", 0.0))
    engine = PrivacyEngine(accountant="rdp")
    epochs = cfg["epochs"]
    dp_model, opt, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=opt,
        data_loader=loader,
        target_epsilon=float(epsilon),
        target_delta=cfg["delta"],
        epochs=epochs,
        max_grad_norm=cfg["max_grad_norm"],
        noise_generator=noise_gen,
    )
    milestones = sorted({round(f * epochs) for f in cfg["milestones"]})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg["gamma"])
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    steps = 0
    prog = Progress(epochs, "DP training", log, unit="epochs", every=0.0)
    for epoch in range(epochs):
        dp_model.train()
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(dp_model(xb), yb)
            loss.backward()
            opt.step()
            steps += 1
            if step_hook is not None:
                step_hook(opt)
        sched.step()
        log(
            f"epoch {epoch + 1}/{epochs} eps {engine.get_epsilon(cfg['delta']):.3f} "
            f"elapsed {time.perf_counter() - t0:.1f}s"
        )
        prog.advance()  # Poisson batches vary in number: the time left counts epochs
    opt.zero_grad(set_to_none=True)
    model = dp_model._module
    model.eval()
    stats = {
        "train_acc": accuracy(model, x, y),
        "test_acc": accuracy_u8(model, test_images, test_labels, mean, std, device),
        "n_train": int(len(idx)),
        "seconds": time.perf_counter() - t0,
        "epsilon": float(engine.get_epsilon(cfg["delta"])),
        "target_epsilon": float(epsilon),
        "delta": float(cfg["delta"]),
        "noise_multiplier": float(opt.noise_multiplier),
        "sample_rate": float(1.0 / len(loader)),
        "steps": int(steps),
        "max_grad_norm": float(cfg["max_grad_norm"]),
    }
    log(
        f"done: eps {stats['epsilon']:.3f} sigma {stats['noise_multiplier']:.4f} "
        f"test_acc {stats['test_acc']:.4f}"
    )
    return model, stats
