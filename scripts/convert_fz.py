"""Feldman & Zhang's ImageNet models, PyTorch side: convert an export, build the membership
matrix, check a converted model's correctness against the release (docs/audit-your-model.md)."""

import argparse
import json

import numpy as np


def convert(a: argparse.Namespace) -> None:
    from curvmia.fz import convert_export

    info = convert_export(a.export, a.out, rtol=a.rtol, meta={"run": a.run})
    print(json.dumps(info, indent=1))


def membership(a: argparse.Namespace) -> None:
    from curvmia.fz import _npz, check_aux, membership_matrix, population_order
    from curvmia.io import atomic_path, write_json

    manifest = json.loads(open(a.manifest).read())
    perm, perm_test = population_order(a.index, a.index_sha256 or None, a.data_path, manifest)
    subsets = []
    for path in a.aux:
        aux = _npz(path)
        check_aux(aux, len(perm), len(perm_test), path)
        subsets.append(aux["subsample_idx"])
    m = membership_matrix(subsets, perm)
    for path, arr in ((a.out_order, perm), (a.out_order_test, perm_test), (a.out_membership, m)):
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, arr)
    frac = m.mean(axis=1)
    write_json(
        a.out_json,
        {
            "runs": a.runs,
            "aux": a.aux,
            "n_population": int(m.shape[1]),
            "n_test": len(perm_test),
            "keep_fraction": [round(float(f), 6) for f in frac],
        },
    )
    print(f"membership {m.shape}, kept fraction {frac.min():.4f}..{frac.max():.4f}")


def check(a: argparse.Namespace) -> None:
    import torch

    from curvmia.checkpoint import load_checkpoint
    from curvmia.data import load_prepared
    from curvmia.device import pick_device
    from curvmia.fz import (
        _npz,
        agreement_report,
        check_agreement,
        check_sample,
        predicted_correct,
        released_correctness,
    )
    from curvmia.io import write_json

    torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    data = load_prepared(a.data)
    aux = _npz(a.aux)
    model, _ = load_checkpoint(a.model, device)
    mean, std = data.manifest["mean"], data.manifest["std"]
    member = np.asarray(np.load(a.membership, mmap_mode="r", allow_pickle=False)[a.row])
    reports = {}
    for split, order, images, labels, released_splits in (
        ("population", a.order, data.train_images, data.train_labels, ("train", "removed")),
        ("held-out", a.order_test, data.test_images, data.test_labels, ("test",)),
    ):
        perm = np.load(order, allow_pickle=False)
        released = released_correctness(aux, perm, released_splits)
        pos = check_sample(len(perm), a.n, a.seed)
        pred = predicted_correct(model, images, labels, pos, mean, std, device, a.batch_size)
        inside = member[pos] if split == "population" else np.zeros(len(pos), bool)
        reports[split] = agreement_report(pred, released[pos], inside)
    print(json.dumps(reports, indent=1))
    check_agreement(reports, a.min_agreement, a.model)
    write_json(a.out, {"row": a.row, "model": a.model, "aux": a.aux, **reports})


def add_convert(sub: argparse._SubParsersAction) -> None:
    """The convert subcommand: an export .npz to a checkpoint."""
    c = sub.add_parser("convert", help="export .npz -> sonnet_resnet50 checkpoint (.pt)")
    c.add_argument("--export", required=True)
    c.add_argument("--run", type=int, required=True, help="the release's run id (recorded)")
    c.add_argument("--rtol", type=float, default=1e-4, help="largest probe error allowed")
    c.add_argument("--out", required=True)
    c.set_defaults(fn=convert)


def add_membership(sub: argparse._SubParsersAction) -> None:
    """The membership subcommand: every run's aux arrays to the membership matrix."""
    m = sub.add_parser("membership", help="aux_arrays.npz of every run -> membership matrix")
    m.add_argument("--index", required=True, help="imagenet_index.npz")
    m.add_argument("--index-sha256", default="", help="expected sha256 (empty: plain arrays only)")
    m.add_argument("--data-path", required=True, help="the ImageFolder root (data.path)")
    m.add_argument("--manifest", required=True, help="prepared dataset's manifest.json")
    m.add_argument("--runs", nargs="+", required=True)
    m.add_argument("--aux", nargs="+", required=True, help="aux_arrays.npz, one per run")
    m.add_argument("--out-membership", required=True)
    m.add_argument("--out-order", required=True, help="population position of F&Z's train indices")
    m.add_argument("--out-order-test", required=True, help="held-out position of their val indices")
    m.add_argument("--out-json", required=True)
    m.set_defaults(fn=membership)


def add_check(sub: argparse._SubParsersAction) -> None:
    """The check subcommand: a converted model's correctness against the release."""
    k = sub.add_parser("check", help="correctness agreement with the release's aux arrays")
    k.add_argument("--model", required=True)
    k.add_argument("--aux", required=True)
    k.add_argument("--row", type=int, required=True)
    k.add_argument("--data", required=True, help="prepared dataset directory")
    k.add_argument("--order", required=True)
    k.add_argument("--order-test", required=True)
    k.add_argument("--membership", required=True)
    k.add_argument("--n", type=int, required=True, help="images checked per split")
    k.add_argument("--seed", type=int, required=True)
    k.add_argument("--min-agreement", type=float, required=True)
    k.add_argument("--batch-size", type=int, default=128)
    k.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    k.add_argument("--threads", type=int, default=1)
    k.add_argument("--out", required=True)
    k.set_defaults(fn=check)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for add in (add_convert, add_membership, add_check):
        add(sub)
    a = ap.parse_args()
    if a.cmd == "membership" and len(a.runs) != len(a.aux):
        ap.error("--runs and --aux differ in length")
    a.fn(a)


if __name__ == "__main__":
    main()
