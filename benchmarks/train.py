"""Training input pipeline vs model throughput, measured in one run on the same batches.

    python benchmarks/train.py --shape 3 32 32 --arch cifar_resnet18 --batch 256
    python benchmarks/train.py --shape 3 224 224 --arch resnet50 --batch 128 --stream

The pipeline is what curvmia.train does per batch before the model: the device-resident
path (index uint8 on the device, crop/flip, normalize, channels_last) or, with --stream,
DataLoader workers reading a memory-mapped uint8 .npy into pinned memory and the copy to
the device. The model is forward + backward + SGD step on ready batches. The pipeline keeps
up when its rate is at least the model's (target: >= 90%); the ratio printed is
pipeline / model. Data is synthetic (random uint8) of the given shape.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from curvmia.device import pick_device
from curvmia.models import build_model
from curvmia.train import (
    BatchSource,
    ResidentBatches,
    StreamedBatches,
    augment,
    autocast,
)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32])
    ap.add_argument("--n", type=int, default=4096, help="synthetic dataset size")
    ap.add_argument("--arch", default="cifar_resnet18")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--stream", action="store_true", help="memmap + DataLoader workers")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rrc", action="store_true", help="RandomResizedCrop (ImageNet recipe)")
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def source_of(
    a: argparse.Namespace, images: np.ndarray, labels: np.ndarray, device: torch.device, tmp: str
) -> BatchSource:
    """curvmia.train's batch source: resident, or (--stream) workers over a memmapped .npy."""
    everything = np.arange(a.n)
    if not a.stream:
        return ResidentBatches(images, labels, everything, device)
    np.save(Path(tmp) / "images.npy", images)
    mm = np.load(Path(tmp) / "images.npy", mmap_mode="r", allow_pickle=False)
    return StreamedBatches(mm, labels, everything, device, a.workers)


def pipeline_rate(
    a: argparse.Namespace, source: BatchSource, batches: list[np.ndarray], device: torch.device
) -> tuple[float, list]:
    """Images/s of the pipeline alone (first 2 batches are warm-up: curvmia.train's batch
    source and augmentation, crop/flip or RandomResizedCrop), and its batches."""
    cfg = {
        "random_resized_crop": a.rrc,
        "pad": 0 if a.rrc else 4,
        "flip": True,
        "channels_last": True,
    }
    mean, std = np.full(a.shape[0], 0.5), np.full(a.shape[0], 0.25)
    gen = torch.Generator().manual_seed(0)
    out, t = [], None
    for k, (xb, yb) in enumerate(source.epoch(batches)):
        if k == 2:
            sync(device)
            t = time.perf_counter()
        out.append((augment(xb, cfg, mean, std, gen), yb))
    sync(device)
    return a.steps * a.batch / (time.perf_counter() - t), out


def model_rate(a: argparse.Namespace, out: list, device: torch.device) -> float:
    """Images/s of forward + backward + SGD step on ready batches (2 warm-up)."""
    model = build_model(a.arch, 10, a.shape[0]).to(device).to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if a.compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for k, (xb, yb) in enumerate(out):
        if k == 2:
            sync(device)
            t = time.perf_counter()
        with autocast(a.amp, device):
            loss = loss_fn(fwd(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return a.steps * a.batch / (time.perf_counter() - t)


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (a.n, *a.shape), dtype=np.uint8)
    labels = rng.integers(0, 10, a.n).astype(np.int64)
    batches = [rng.permutation(a.n)[: a.batch] for _ in range(a.steps + 2)]
    with tempfile.TemporaryDirectory() as tmp:
        source = source_of(a, images, labels, device, tmp)
        pipe_rate, out = pipeline_rate(a, source, batches, device)
    model_r = model_rate(a, out, device)
    kind = f"streamed ({a.workers} workers, memmap)" if a.stream else "device-resident"
    print(f"device {device}, {a.arch}, batch {a.batch}, shape {a.shape}, amp {a.amp}")
    print(f"pipeline {kind}: {pipe_rate:10.1f} img/s")
    print(f"model fwd+bwd+step:  {model_r:10.1f} img/s")
    print(f"pipeline / model = {pipe_rate / model_r:.2f} (keeps up if >= 0.90)")


if __name__ == "__main__":
    main()
