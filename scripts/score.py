"""Score every population and test sample with one model (SPEC §3 features)."""

import argparse
import json

import torch

from curvmia.data import load_prepared
from curvmia.io import save_npz
from curvmia.scores import score_model
from curvmia.train import load_checkpoint, pick_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--model", required=True, help="checkpoint (.pt)")
    ap.add_argument("--row", type=int, required=True, help="mask row of the model")
    ap.add_argument("--scoring", required=True, help="scoring config section as JSON")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    data = load_prepared(a.data)
    model, meta = load_checkpoint(a.model, device)
    print(
        f"model row {a.row} ({meta['arch']}), test acc {meta['test_acc']:.4f}, device {device}",
        flush=True,
    )
    arrays = score_model(
        model,
        data,
        scoring=json.loads(a.scoring),
        row=a.row,
        device=device,
        log=lambda s: print(s, flush=True),
    )
    save_npz(a.out, **arrays)


if __name__ == "__main__":
    main()
