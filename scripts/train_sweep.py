"""Train one sweep target: DP (Opacus) for the privacy sweep, the shadows' recipe for the
dataset-size sweep."""

import argparse
import json

import torch

from curvmia.checkpoint import checkpoint_meta, save_checkpoint
from curvmia.data import load_prepared
from curvmia.device import pick_device
from curvmia.identity import data_hash, members_hash, members_of, train_hash
from curvmia.provenance import code_record
from curvmia.sweeps import sweep_seed
from curvmia.train import TrainData, resume_path_of, train_dp_model, train_model


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--members", required=True, help="bool .npy over the population")
    ap.add_argument("--sweep", required=True, choices=["dp", "size"])
    ap.add_argument("--value", type=float, required=True, help="epsilon (dp) or m (size)")
    ap.add_argument("--seed", type=int, required=True, help="sweep seed index")
    ap.add_argument("--train", required=True, help="training recipe as JSON")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    return ap.parse_args()


def main() -> None:
    a = parse_args()
    device = pick_device(a.device)  # before any data: a broken GPU job stops at once
    torch.set_num_threads(a.threads)
    cfg = json.loads(a.train)
    data = load_prepared(a.data)
    idx = members_of(a.members)
    seed = sweep_seed(cfg["seed"], a.sweep, a.value, a.seed)
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"{a.sweep} {a.value} seed {a.seed}: {len(idx)} members, seed {seed}, device {device}")
    common = dict(cfg=cfg, seed=seed, device=device, indices=idx, log=log)
    if a.sweep == "dp":
        model, stats = train_dp_model(TrainData.of(data), epsilon=a.value, **common)
    else:
        model, stats = train_model(TrainData.of(data), resume_path=resume_path_of(a.out), **common)
    meta = checkpoint_meta(
        arch=cfg["arch"],
        model_kwargs=cfg.get("model_kwargs"),
        num_classes=data.manifest["num_classes"],
        in_chans=data.train_images.shape[1],
        identity={
            "train_hash": train_hash(cfg),
            "members_hash": members_hash(idx),
            "data_hash": data_hash(data.manifest),
        },
        dp_groupnorm=a.sweep == "dp",
        sweep=a.sweep,
        value=a.value,
        sweep_seed=a.seed,
        seed=seed,
        **stats,
        code=code_record("train_sweep.py"),
        compute={"threads": a.threads},
        device=device,
    )
    save_checkpoint(a.out, model, meta)


if __name__ == "__main__":
    main()
