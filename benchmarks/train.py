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
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from curvmia.device import pick_device
from curvmia.models import build_model
from curvmia.train import _BatchDataset, random_resized_crop
from curvmia.transforms import normalize, random_crop_flip, to_float


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
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
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (a.n, *a.shape), dtype=np.uint8)
    labels = rng.integers(0, 10, a.n).astype(np.int64)
    mean, std = np.full(a.shape[0], 0.5), np.full(a.shape[0], 0.25)
    gen = torch.Generator().manual_seed(0)
    batches = [rng.permutation(a.n)[: a.batch] for _ in range(a.steps + 2)]

    def augment(xb_u8: torch.Tensor) -> torch.Tensor:
        xb = to_float(xb_u8)
        if a.rrc:
            xb = random_resized_crop(xb, gen)
        xb = random_crop_flip(xb, 0 if a.rrc else 4, True, gen)
        return normalize(xb, mean, std).contiguous(memory_format=torch.channels_last)

    tmpdir = tempfile.TemporaryDirectory()
    if a.stream:
        path = Path(tmpdir.name) / "images.npy"
        np.save(path, images)
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        loader = torch.utils.data.DataLoader(
            _BatchDataset(mm, labels, batches),
            batch_size=None,
            num_workers=a.workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=4 if a.workers else None,
        )

        def pipeline():
            for xb, yb in loader:
                yield augment(xb.to(device, non_blocking=True)), yb.to(device, non_blocking=True)
    else:
        x_dev = torch.from_numpy(images).to(device)
        y_dev = torch.from_numpy(labels).to(device)
        idx = [torch.from_numpy(b).to(device) for b in batches]

        def pipeline():
            for i in idx:
                yield augment(x_dev[i]), y_dev[i]

    # pipeline alone (first 2 batches are warm-up)
    out = []
    t = None
    for k, (xb, yb) in enumerate(pipeline()):
        if k == 2:
            sync(device)
            t = time.perf_counter()
        out.append((xb, yb))
    sync(device)
    pipe_rate = a.steps * a.batch / (time.perf_counter() - t)

    model = build_model(a.arch, 10, a.shape[0]).to(device).to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if a.compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if a.amp == "bf16"
        else contextlib.nullcontext()
    )
    model.train()
    for k, (xb, yb) in enumerate(out):
        if k == 2:
            sync(device)
            t = time.perf_counter()
        with autocast:
            loss = loss_fn(fwd(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    model_rate = a.steps * a.batch / (time.perf_counter() - t)
    kind = f"streamed ({a.workers} workers, memmap)" if a.stream else "device-resident"
    print(f"device {device}, {a.arch}, batch {a.batch}, shape {a.shape}, amp {a.amp}")
    print(f"pipeline {kind}: {pipe_rate:10.1f} img/s")
    print(f"model fwd+bwd+step:  {model_rate:10.1f} img/s")
    print(f"pipeline / model = {pipe_rate / model_rate:.2f} (keeps up if >= 0.90)")
    tmpdir.cleanup()


if __name__ == "__main__":
    main()
