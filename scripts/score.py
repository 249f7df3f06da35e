"""Score every population and test sample with one model (SPEC §3 features), or one shard."""

import argparse
import json

import torch

from curvmia.data import load_prepared
from curvmia.device import pick_device
from curvmia.io import save_npz
from curvmia.scores import disable_fused_attention, score_model
from curvmia.train import load_checkpoint


def shard_arg(s: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in s.split("/"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--shard: expected I/N, got {s!r}") from e
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard: need 0 <= I < N, got {s!r}")
    return i, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--model", required=True, help="checkpoint (.pt)")
    ap.add_argument("--row", type=int, required=True, help="mask row of the model")
    ap.add_argument("--scoring", required=True, help="scoring config section as JSON")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", type=shard_arg, default=(0, 1), help="I/N: score shard I of N")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    scoring = json.loads(a.scoring)
    if scoring.get("hutch_nprobes", 0):
        disable_fused_attention()
    device = pick_device(a.device)
    data = load_prepared(a.data)
    model, meta = load_checkpoint(a.model, device)
    print(
        f"model row {a.row} ({meta['arch']}), test acc {meta['test_acc']:.4f}, device {device}, "
        f"shard {a.shard[0]}/{a.shard[1]}",
        flush=True,
    )
    arrays = score_model(
        model,
        data,
        scoring=scoring,
        row=a.row,
        device=device,
        log=lambda s: print(s, flush=True),
        shard=a.shard,
    )
    save_npz(a.out, **arrays)


if __name__ == "__main__":
    main()
