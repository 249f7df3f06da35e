"""Make one imported mask row's checkpoint from its model file (docs/audit-your-model.md)."""

import argparse
import json
import time

import torch
from torch import nn

from curvmia.checkpoint import checkpoint_meta, save_checkpoint, torchscript_bytes
from curvmia.config_checks import manifest_contract
from curvmia.data import Prepared, load_prepared
from curvmia.device import pick_device
from curvmia.identity import checkpoint_identity, members_of
from curvmia.imported import check_contract, check_file, import_hash, load_model, output_classes
from curvmia.io import load_npz, sha256_file
from curvmia.provenance import code_record
from curvmia.train import accuracy_u8


def checked_model(e: dict, man: dict, where: str) -> nn.Module:
    """The entry's model, after its input contract and its number of logits match the data."""
    have = manifest_contract(man)
    try:
        check_contract(e["input"], have, where, e["path"])
        model = load_model(e, where)
        got = output_classes(model, e["input"])
        if got != man["num_classes"]:
            raise ValueError(
                f"{where}.input.num_classes: {e['path']} gives {got} logits, the data has "
                f"{man['num_classes']} classes"
            )
    except ValueError as err:
        raise SystemExit(f"Invalid imported model: {err}") from None
    return model


def accuracies(
    model: nn.Module, data: Prepared, members, known: bool, device: torch.device
) -> tuple[float, float]:
    """Train accuracy on the row's members (NaN when they are unknown) and test accuracy."""
    test_acc = accuracy_u8(model, data.test_images, data.test_labels, data.mean, data.std, device)
    if not known:
        return float("nan"), test_acc
    train_acc = accuracy_u8(model, data.train_images, data.train_labels, data.mean, data.std,
                            device, indices=members)  # fmt: skip
    return train_acc, test_acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entry", required=True, help="the row's imported entry as JSON")
    ap.add_argument("--data", required=True, help="prepared dataset manifest")
    ap.add_argument("--masks", required=True, help="masks.npz of the experiment")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = pick_device(a.device)  # before any file is read: no usable GPU stops at once
    t0 = time.time()
    e = json.loads(a.entry)
    r, path, where = e["row"], e["path"], f"imported.models[row {e['row']}]"
    check_file(path, e["sha256"], where)  # again: the file may have changed since the parse
    data = load_prepared(a.data)
    model = checked_model(e, data.manifest, where).to(device).eval()
    masks = load_npz(a.masks)
    known = bool(masks["known"][r]) if "known" in masks else True
    members = members_of(a.masks, r)
    train_acc, test_acc = accuracies(model, data, members, known, device)
    meta = checkpoint_meta(
        arch=e["arch"] if e["format"] != "torchscript" else "torchscript",
        model_kwargs=e["model_kwargs"],
        num_classes=data.manifest["num_classes"],
        in_chans=data.manifest["image_shape"][0],
        identity=checkpoint_identity(import_hash(e), members, data.manifest, row=r),
        imported={"path": path, "sha256": sha256_file(path), "format": e["format"],
                  "members_known": known},  # fmt: skip
        n_train=int(len(members)) if known else None, train_acc=train_acc, test_acc=test_acc,
        seconds=time.time() - t0, code=code_record("import_model.py"),
        compute={"threads": a.threads}, device=device,
    )  # fmt: skip
    if e["format"] == "torchscript":
        meta["torchscript"] = torchscript_bytes(path)  # trusted in the entry
    save_checkpoint(a.out, model.cpu(), meta)
    print(f"row {r}: imported {path} ({e['format']}); members "
          f"{len(members) if known else 'unknown'}; train acc {train_acc:.4f}, "
          f"test acc {test_acc:.4f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
