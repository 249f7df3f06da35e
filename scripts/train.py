"""Train the model of one mask row and save its checkpoint."""

import argparse
import json

import numpy as np
import torch

from curvmia.checkpoint import checkpoint_meta, save_checkpoint
from curvmia.data import load_prepared
from curvmia.device import pick_device
from curvmia.identity import data_hash, members_hash, members_of, train_hash
from curvmia.provenance import code_record
from curvmia.train import TrainCompute, TrainData, model_seed, resume_path_of, train_model


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--masks", required=True, help="masks.npz of the experiment")
    ap.add_argument("--row", type=int, required=True, help="mask row to train on")
    ap.add_argument("--train", required=True, help="train config section as JSON")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=0.0,
        help="minimum minutes between resume states (0 = every epoch)",
    )
    ap.add_argument("--resident-max-gib", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=4, help="loader workers when streaming")
    ap.add_argument("--out", required=True)
    return ap.parse_args()


def identity_of(row: int, cfg: dict, members: np.ndarray, manifest: dict) -> dict:
    """What this checkpoint is made from; every later load compares it (curvmia/identity.py)."""
    return {
        "row": row,
        "train_hash": train_hash(cfg),
        "members_hash": members_hash(members),
        "data_hash": data_hash(manifest),
    }


def main() -> None:
    a = parse_args()
    # before any data is read: a GPU job without a usable GPU stops at once
    device = pick_device(a.device)
    torch.set_num_threads(a.threads)
    cfg = json.loads(a.train)
    data = load_prepared(a.data)
    members = members_of(a.masks, a.row)
    seed = model_seed(cfg["seed"], a.row)
    identity = identity_of(a.row, cfg, members, data.manifest)
    print(f"row {a.row}: {len(members)} training samples, seed {seed}, device {device}", flush=True)
    compute = TrainCompute(a.resident_max_gib, a.workers, a.checkpoint_minutes)
    model, stats = train_model(
        TrainData.of(data),
        cfg=cfg,
        seed=seed,
        device=device,
        indices=members,
        identity=identity,
        resume_path=resume_path_of(a.out),
        compute=compute,
        log=lambda s: print(s, flush=True),
    )
    meta = checkpoint_meta(
        arch=cfg["arch"],
        model_kwargs=cfg.get("model_kwargs"),
        num_classes=data.manifest["num_classes"],
        in_chans=data.train_images.shape[1],
        identity=identity,
        seed=seed,
        **stats,
        code=code_record("train.py"),
        # compute knobs: not params of the model (docs/reruns.md), recorded here
        compute={"threads": a.threads, **compute.record()},
        device=device,
    )
    save_checkpoint(a.out, model, meta)


if __name__ == "__main__":
    main()
