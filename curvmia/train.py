"""Shadow and target training: a flat, seeded SGD loop, resumable, GPU-ready; DP-SGD targets.

The recipe (epochs, lr, momentum, weight decay, batch size, lr milestones as
fractions of training, augmentation, and the speed options ``channels_last``,
``amp`` and ``compile``) comes from the ``train`` section of the config.  Data
handling is not part of the recipe: a training subset that fits
(``resident_max_gib``) lives on the device as uint8 and is indexed there;
larger data (ImageNet) is streamed from the memory-mapped array by DataLoader
workers into pinned memory.  Both paths draw the same batches and augment on
the device after the transfer, so they give identical weights on the CPU.

``train_model`` is a short loop over a batch source (:class:`ResidentBatches` or
:class:`StreamedBatches`).  A :class:`ResumeState` (weights, optimizer,
scheduler, every RNG, the key of the run) is written at epoch ends to
``resume_path_of(<out>)``; a rerun after a kill continues from it and finishes
with the weights an uninterrupted run would have had (CPU).  ``train_dp_model``
shares the model and optimizer set-up.  The final checkpoint stores weights
only, plus plain metadata (curvmia/checkpoint.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from .identity import members_hash
from .io import atomic_path, config_hash
from .models import build_model, count_params, dp_compatible, import_opacus
from .progress import Progress
from .transforms import normalize, random_crop_flip, to_float

if TYPE_CHECKING:
    from .data import Prepared


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


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The recipe's mixed precision: bf16 autocast on ``device``, or nothing (``amp: none``)."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def augment(
    x_u8: torch.Tensor, cfg: dict, mean: np.ndarray, std: np.ndarray, gen: torch.Generator
) -> torch.Tensor:
    """The recipe's augmentation of one uint8 batch, on its device: to float,
    RandomResizedCrop (``random_resized_crop``), crop/flip, normalise, channels_last."""
    x = to_float(x_u8)
    if cfg.get("random_resized_crop", False):
        x = random_resized_crop(x, gen)
    x = normalize(random_crop_flip(x, cfg["pad"], cfg["flip"], gen), mean, std)
    return x.contiguous(memory_format=torch.channels_last) if cfg.get("channels_last") else x


def epoch_batches(n: int, batch_size: int, gen: torch.Generator) -> list[np.ndarray]:
    """One epoch's batches: positions into the training subset, drawn from ``gen``; the last
    incomplete batch is dropped."""
    perm = torch.randperm(n, generator=gen).numpy()
    return [perm[s * batch_size : (s + 1) * batch_size] for s in range(n // batch_size)]


# ---------------------------------------------------------------- batch sources

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchSource(Protocol):
    """Where a training's batches come from (:class:`ResidentBatches`, :class:`StreamedBatches`)."""

    def epoch(self, batches: list[np.ndarray]) -> Iterator[Batch]:
        """The uint8 images and labels of each batch (positions into the subset), on the device."""


class ResidentBatches:
    """The training subset as uint8 on the device (read in file order), indexed there."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray, device: torch.device
    ):
        order = np.sort(idx)
        self.x = torch.from_numpy(np.asarray(images[order])).to(device)
        self.y = torch.from_numpy(np.asarray(labels[order])).to(device)
        pos = np.empty(len(labels), dtype=np.int64)  # subset index -> row of the copy
        pos[order] = np.arange(len(idx))
        self.rows, self.device = torch.from_numpy(pos[idx]).to(device), device

    def epoch(self, batches: list[np.ndarray]) -> Iterator[Batch]:
        sel = [self.rows[torch.from_numpy(b).to(self.device)] for b in batches]
        return ((self.x[i], self.y[i]) for i in sel)


class _BatchDataset(torch.utils.data.Dataset):
    """Returns the uint8 images and labels of one batch of indices (DataLoader workers)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batches: list[np.ndarray]):
        self.images, self.labels, self.batches = images, labels, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        sel = self.batches[i]
        order = np.argsort(sel, kind="stable")  # read the memmap in file order
        x = np.empty((len(sel), *self.images.shape[1:]), dtype=np.uint8)
        x[order] = self.images[sel[order]]
        return torch.from_numpy(x), torch.from_numpy(np.asarray(self.labels[sel]))


class StreamedBatches:
    """DataLoader ``workers`` read each batch from the (memory-mapped) array into pinned
    memory; it is copied to the device without blocking."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        idx: np.ndarray,
        device: torch.device,
        workers: int,
    ):
        self.images, self.labels, self.idx = images, labels, idx
        self.device, self.workers = device, workers

    def epoch(self, batches: list[np.ndarray]) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            _BatchDataset(self.images, self.labels, [self.idx[b] for b in batches]),
            batch_size=None,
            shuffle=False,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.workers > 0 else None,
        )
        dev = self.device
        return ((xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)) for xb, yb in loader)


@dataclass(frozen=True)
class TrainCompute:
    """Compute knobs of a training (config ``compute``): they change its speed, never its
    weights.  A subset up to ``resident_max_gib`` of uint8 lives on the device, a larger one
    is streamed by ``workers``; the resume state is written at most every
    ``checkpoint_minutes`` (0 = every epoch)."""

    resident_max_gib: float = 8.0
    workers: int = 0
    checkpoint_minutes: float = 0.0

    def record(self) -> dict[str, float | int]:
        """The knobs as a checkpoint records them (its ``compute`` entry)."""
        return {
            "loader_workers": self.workers,
            "resident_max_gib": self.resident_max_gib,
            "checkpoint_minutes": self.checkpoint_minutes,
        }


def batch_source(
    images: np.ndarray,
    labels: np.ndarray,
    idx: np.ndarray,
    device: torch.device,
    compute: TrainCompute,
    log: Callable[[str], None] = print,
) -> BatchSource:
    """The batch source of the subset ``idx``: resident when it fits, else streamed."""
    nbytes = len(idx) * int(np.prod(images.shape[1:]))
    if nbytes <= compute.resident_max_gib * 2**30:
        source, where = ResidentBatches(images, labels, idx, device), f"resident on {device}"
    else:
        source = StreamedBatches(images, labels, idx, device, compute.workers)
        where = f"streamed by {compute.workers} workers"
    log(f"{len(idx)} samples, {nbytes / 2**20:.1f} MiB uint8, {where}")
    return source


# ---------------------------------------------------------------- resume state


def resume_path_of(checkpoint: str | Path) -> Path:
    """Where the training of ``checkpoint`` keeps its resume state."""
    return Path(f"{checkpoint}.resume.pt")


def _resume_key(cfg: dict, seed: int, idx: np.ndarray, identity: dict | None) -> str:
    """Key of a resume state: recipe, seed, the member indices and the checkpoint identity
    (row, data hash): a state made for another subset or dataset is never resumed."""
    ident = {k: v for k, v in (identity or {}).items() if k != "members_hash"}
    return config_hash({"train": cfg, "seed": seed, "members": members_hash(idx), **ident})


@dataclass
class TrainParts:
    """What training changes: the weights, the optimizer, the scheduler, the augmentation RNG."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator


@dataclass
class ResumeState:
    """Where a killed training continues from: the weights, optimizer and scheduler after
    ``epoch`` epochs, every RNG (the augmentation generator, torch's, CUDA's) and the ``key``
    of the run that made it (:func:`_resume_key`).  Saved as a plain dict (weights_only)."""

    key: str
    epoch: int
    model: dict
    opt: dict
    sched: dict
    rng: dict

    @classmethod
    def capture(cls, key: str, epoch: int, parts: TrainParts, device: torch.device) -> ResumeState:
        rng = {"gen": parts.gen.get_state(), "torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        sd = (parts.model.state_dict(), parts.opt.state_dict(), parts.sched.state_dict())
        return cls(key, epoch, *sd, rng)

    def restore(self, parts: TrainParts, device: torch.device) -> None:
        parts.model.load_state_dict(self.model)
        parts.opt.load_state_dict(self.opt)
        parts.sched.load_state_dict(self.sched)
        parts.gen.set_state(self.rng["gen"])
        torch.set_rng_state(self.rng["torch"])
        if "cuda" in self.rng and device.type == "cuda":
            torch.cuda.set_rng_state(self.rng["cuda"], device)

    def save(self, path: Path) -> None:
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(dict(vars(self)), tmp)

    @classmethod
    def load(
        cls, path: Path, device: torch.device, log: Callable[[str], None]
    ) -> ResumeState | None:
        """The state at ``path``, or None; a corrupt one is set aside (renamed to
        ``<path>.corrupt``) with a warning, so that training starts afresh instead of failing
        on every retry."""
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            names = [f.name for f in fields(cls)]
            if not isinstance(state, dict) or not set(names) <= state.keys():
                raise ValueError("not a resume state")
            return cls(**{k: state[k] for k in names})
        except Exception as e:  # noqa: BLE001 (any unreadable state is set aside, never fatal)
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            log(
                f"WARNING: {path}: corrupt resume state ({type(e).__name__}: {e}); "
                f"moved to {aside}, training starts afresh"
            )
            return None


class Resume:
    """The resume state file of one run (none when ``path`` is None): read at the start when
    made by the same run (``key``), written at epoch ends once ``minutes`` have passed since
    the last write, removed when training ends."""

    def __init__(self, path: str | Path | None, key: str, minutes: float, device: torch.device):
        self.path, self.key = (Path(path) if path else None), key
        self.every = 60.0 * minutes
        self.device, self.last = device, time.monotonic()

    def start_epoch(self, parts: TrainParts, log: Callable[[str], None]) -> int:
        """The epoch to start from: 0, or the one a resume state of this run ended."""
        if self.path is None or not self.path.exists():
            return 0
        state = ResumeState.load(self.path, self.device, log)
        if state is None:
            return 0
        if state.key != self.key:
            log(f"{self.path}: made for another recipe, seed or subset; starting afresh")
            return 0
        state.restore(parts, self.device)
        log(f"resumed from {self.path} after epoch {state.epoch}")
        return int(state.epoch)

    def epoch_done(self, epoch: int, epochs: int, parts: TrainParts) -> None:
        """After ``epoch`` epochs: write the state when due (not after the last epoch)."""
        if self.path is not None and epoch < epochs and time.monotonic() - self.last >= self.every:
            ResumeState.capture(self.key, epoch, parts, self.device).save(self.path)
            self.last = time.monotonic()

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)  # intermediate state is temporary


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainData:
    """What a training reads: the population's uint8 images and labels (possibly
    memory-mapped), the test split, the normalisation and the number of classes."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    num_classes: int

    @classmethod
    def of(cls, prepared: Prepared) -> TrainData:
        """The training view of a prepared dataset."""
        p = prepared
        images = (p.train_images, p.train_labels, p.test_images, p.test_labels)
        return cls(*images, p.mean, p.std, num_classes=p.manifest["num_classes"])

    def subset(self, indices: np.ndarray | None) -> np.ndarray:
        """The member indices of the population: ``indices``, default all."""
        return np.arange(len(self.train_labels)) if indices is None else np.asarray(indices)


def make_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    """RMSprop where ``cfg['optimizer']`` says so (DP recipe), else SGD with the recipe's
    momentum, weight decay and Nesterov (absent keys: 0, 0, off)."""
    if cfg.get("optimizer") == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=cfg["lr"])
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg["lr"],
        momentum=cfg.get("momentum", 0.0),
        weight_decay=cfg.get("weight_decay", 0.0),
        nesterov=cfg.get("nesterov", False),
    )


def train_parts(
    cfg: dict,
    seed: int,
    data: TrainData,
    device: torch.device,
    log: Callable[[str], None],
    dp: bool = False,
) -> TrainParts:
    """Seed torch with ``seed`` and set up a training (SGD and DP alike): the recipe's model
    on ``device`` (GroupNorm for ``dp``, channels_last when asked), its optimizer, the lr
    times ``gamma`` at the ``milestones`` (fractions of the epochs), the augmentation RNG."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(
        cfg["arch"], data.num_classes, data.train_images.shape[1], cfg.get("model_kwargs")
    )
    log(f"model {cfg['arch']} {cfg.get('model_kwargs') or {}}: {count_params(model)} parameters")
    model = (dp_compatible(model) if dp else model).to(device)
    if cfg.get("channels_last", False):
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    milestones = sorted({round(f * cfg["epochs"]) for f in cfg["milestones"]})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg["gamma"])
    return TrainParts(model, opt, sched, gen)


def _train_epoch(
    parts: TrainParts,
    fwd: nn.Module,
    batches: Iterator[Batch],
    prepare: Callable[[torch.Tensor], torch.Tensor],
    amp: contextlib.AbstractContextManager,
    prog: Progress,
) -> tuple[float, float, float]:
    """One epoch: SGD steps with ``fwd`` (under ``amp``) over ``batches`` (uint8, made ready
    by ``prepare``), then the scheduler's step; return the mean loss, the accuracy on the
    augmented batches and the epoch's lr."""
    parts.model.train()
    loss_fn = nn.CrossEntropyLoss()
    device = next(parts.model.parameters()).device
    tot_loss = torch.zeros((), device=device)
    tot_correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for xb_u8, yb in batches:
        xb = prepare(xb_u8)
        with amp:
            out = fwd(xb)
            loss = loss_fn(out, yb)
        parts.opt.zero_grad(set_to_none=True)
        loss.backward()
        parts.opt.step()
        tot_loss += loss.detach().float() * len(yb)
        tot_correct += (out.detach().argmax(1) == yb).sum()
        seen += len(yb)
        prog.advance()
    lr = parts.opt.param_groups[0]["lr"]
    parts.sched.step()
    return tot_loss.item() / max(seen, 1), tot_correct.item() / max(seen, 1), lr


def _accuracies(
    model: nn.Module, data: TrainData, idx: np.ndarray, device: torch.device, cfg: dict
) -> dict[str, float]:
    """Top-1 accuracy on the members ``idx`` and on the test split."""
    evaluate = partial(
        accuracy_u8,
        model,
        mean=data.mean,
        std=data.std,
        device=device,
        channels_last=bool(cfg.get("channels_last", False)),
    )
    return {
        "train_acc": evaluate(data.train_images, data.train_labels, indices=idx),
        "test_acc": evaluate(data.test_images, data.test_labels),
    }


def train_model(
    data: TrainData,
    *,
    cfg: dict,
    seed: int,
    device: torch.device,
    indices: np.ndarray | None = None,
    resume_path: str | Path | None = None,
    identity: dict | None = None,
    compute: TrainCompute | None = None,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, dict]:
    """Train one model with the recipe ``cfg`` on the members ``indices`` of ``data`` (default
    all; memory-mapped data is never copied whole); return it and its stats.  ``resume_path``:
    the run's :class:`Resume` file, whose key holds ``identity`` (row, data hash)."""
    compute, idx, epochs = compute or TrainCompute(), data.subset(indices), cfg["epochs"]
    parts = train_parts(cfg, seed, data, device, log)
    fwd = torch.compile(parts.model) if cfg.get("compile", False) else parts.model
    key = _resume_key(cfg, seed, idx, identity)
    resume = Resume(resume_path, key, compute.checkpoint_minutes, device)
    start = resume.start_epoch(parts, log)
    source = batch_source(data.train_images, data.train_labels, idx, device, compute, log)
    bs = min(cfg["batch_size"], len(idx))
    prog = Progress((epochs - start) * (len(idx) // bs), "training", log, unit="batches")
    prepare = partial(augment, cfg=cfg, mean=data.mean, std=data.std, gen=parts.gen)
    amp = autocast(cfg.get("amp", "none"), device)
    t0 = time.perf_counter()
    for epoch in range(start, epochs):
        batches = source.epoch(epoch_batches(len(idx), bs, parts.gen))
        loss, acc, lr = _train_epoch(parts, fwd, batches, prepare, amp, prog)
        resume.epoch_done(epoch + 1, epochs, parts)
        log(
            f"epoch {epoch + 1}/{epochs} loss {loss:.4f} train_acc(aug) {acc:.4f} lr {lr:.4g} "
            f"elapsed {time.perf_counter() - t0:.1f}s"
        )
    stats = {
        **_accuracies(parts.model, data, idx, device, cfg),
        "n_train": int(len(idx)),
        "seconds": time.perf_counter() - t0,
    }
    log(f"done: train_acc {stats['train_acc']:.4f} test_acc {stats['test_acc']:.4f}")
    resume.remove()
    return parts.model, stats


# ---------------------------------------------------------------- differential privacy


def train_dp_model(
    data: TrainData,
    *,
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
    engine = import_opacus().PrivacyEngine(accountant="rdp")
    idx = data.subset(indices)
    parts = train_parts(cfg, seed, data, device, log, dp=True)
    x, y, loader = _dp_data(data, idx, device, cfg["batch_size"], parts.gen)
    dp_model, opt, loader = engine.make_private_with_epsilon(
        module=parts.model,
        optimizer=parts.opt,
        data_loader=loader,
        target_epsilon=float(epsilon),
        target_delta=cfg["delta"],
        epochs=cfg["epochs"],
        max_grad_norm=cfg["max_grad_norm"],
        noise_generator=torch.Generator(device=device).manual_seed(seed + 1),
    )
    t0 = time.perf_counter()
    steps = _dp_epochs(dp_model, opt, parts.sched, loader, engine, cfg, step_hook, log)
    model = dp_model._module.eval()
    stats = {
        "train_acc": accuracy(model, x, y),
        "test_acc": accuracy_u8(
            model, data.test_images, data.test_labels, data.mean, data.std, device
        ),
        "n_train": int(len(idx)),
        "seconds": time.perf_counter() - t0,
        **_privacy_stats(engine, opt, loader, cfg, epsilon, steps),
    }
    log(
        f"done: eps {stats['epsilon']:.3f} sigma {stats['noise_multiplier']:.4f} "
        f"test_acc {stats['test_acc']:.4f}"
    )
    return model, stats


def _dp_data(
    data: TrainData, idx: np.ndarray, device: torch.device, batch_size: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.utils.data.DataLoader]:
    """The DP training subset, normalised float32 on the device (at most 16 GiB), and its
    loader (Opacus replaces it by Poisson sampling drawn from ``gen``)."""
    need = len(idx) * int(np.prod(data.train_images.shape[1:])) * 4
    if need > 16 * 2**30:
        raise ValueError(
            f"dp_sweep: DP training holds its {len(idx)} samples as float32 in memory "
            f"({need / 2**30:.0f} GiB > 16 GiB); use smaller training sets for DP targets"
        )
    x = torch.from_numpy(np.asarray(data.train_images[idx])).to(device)
    y = torch.from_numpy(np.asarray(data.train_labels[idx])).to(device)
    x = normalize(to_float(x), data.mean, data.std)
    dataset = torch.utils.data.TensorDataset(x, y)
    return x, y, torch.utils.data.DataLoader(dataset, batch_size=batch_size, generator=gen)


def _dp_epochs(
    dp_model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    loader: torch.utils.data.DataLoader,
    engine: object,
    cfg: dict,
    step_hook: Callable[[torch.optim.Optimizer], None] | None,
    log: Callable[[str], None],
) -> int:
    """The DP training loop over Poisson batches; return the number of steps."""
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    steps, epochs = 0, cfg["epochs"]
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
    return steps


def _privacy_stats(
    engine: object,
    opt: torch.optim.Optimizer,
    loader: torch.utils.data.DataLoader,
    cfg: dict,
    epsilon: float,
    steps: int,
) -> dict[str, float | int]:
    """What a DP target's checkpoint records of its privacy: the accountant's epsilon at the
    end, the target, delta, the noise multiplier, the sampling rate, steps and the bound."""
    return {
        "epsilon": float(engine.get_epsilon(cfg["delta"])),
        "target_epsilon": float(epsilon),
        "delta": float(cfg["delta"]),
        "noise_multiplier": float(opt.noise_multiplier),
        "sample_rate": float(1.0 / len(loader)),
        "steps": int(steps),
        "max_grad_norm": float(cfg["max_grad_norm"]),
    }
