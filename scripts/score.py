"""Score every population and test sample with one model (docs/method.md: Estimators features), or
one shard."""

import argparse
import json
from functools import partial

import numpy as np
import torch

from curvmia.checkpoint import load_checkpoint
from curvmia.data import load_prepared
from curvmia.device import pick_device
from curvmia.identity import data_hash, members_hash, members_of, score_identity
from curvmia.io import save_npz
from curvmia.provenance import code_record, kernel_record
from curvmia.scores import disable_fused_attention, score_model


def shard_arg(s: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in s.split("/"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--shard: expected I/N, got {s!r}") from e
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard: need 0 <= I < N, got {s!r}")
    return i, n


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--model", required=True, help="checkpoint (.pt)")
    ap.add_argument("--row", type=int, required=True, help="mask row of the model")
    ap.add_argument("--scoring", required=True, help="scoring config section as JSON")
    ap.add_argument(
        "--scoring-compute",
        default="{}",
        help="JSON of the scoring compute knobs (memory_mb, forward_batch): merged into"
        " --scoring; they change the speed, not the scores",
    )
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", type=shard_arg, default=(0, 1), help="I/N: score shard I of N")
    ap.add_argument("--train-hash", help="the recipe hash the model must have been trained with")
    ap.add_argument(
        "--members", help="masks.npz (row --row) or members .npy the model must have trained on"
    )
    ap.add_argument("--out", required=True)
    return ap.parse_args()


def expected_identity(a: argparse.Namespace, data) -> dict:
    """What the checkpoint must record (checked in this order: the row first)."""
    main = bool(a.members) and a.members.endswith(".npz")  # a mask row, not a sweep target
    expect = {"row": a.row} if main else {}
    if a.train_hash:
        expect["train_hash"] = a.train_hash
    if a.members:
        expect["members_hash"] = members_hash(members_of(a.members, a.row if main else None))
    expect["data_hash"] = data_hash(data.manifest)
    return expect


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    scoring = {**json.loads(a.scoring), **json.loads(a.scoring_compute or "{}")}
    if scoring.get("hutch_nprobes", 0):
        disable_fused_attention()
    device = pick_device(a.device)
    data = load_prepared(a.data)
    model, meta = load_checkpoint(a.model, device, expect=expected_identity(a, data))
    print(
        f"model row {a.row} ({meta['arch']}), test acc {meta['test_acc']:.4f}, device {device}, "
        f"shard {a.shard[0]}/{a.shard[1]}",
        flush=True,
    )
    log = partial(print, flush=True)
    arrays = score_model(model, data, scoring=scoring, row=a.row, device=device, log=log,
                         shard=a.shard)  # fmt: skip
    arrays["meta"] = with_identity(arrays["meta"], meta, json.loads(a.scoring))
    save_npz(a.out, **arrays)


def with_identity(record: np.ndarray, checkpoint_meta: dict, scoring: dict) -> np.ndarray:
    """The score file's meta with its identity (the verified checkpoint's plus the scoring
    hash of ``scoring``: the settings less the compute knobs), code and kernel records."""
    meta = json.loads(str(record))
    meta["identity"] = score_identity(checkpoint_meta, scoring)
    meta["code"] = code_record("score.py")
    meta["kernels"] = kernel_record()  # CPU model and flags, BLAS and oneDNN versions
    return np.array(json.dumps(meta, sort_keys=True))


if __name__ == "__main__":
    main()
