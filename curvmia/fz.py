"""Feldman & Zhang's released ImageNet ResNet-50s as curvmia checkpoints and membership.

The release (docs/audit-your-model.md) holds, per run, a TensorFlow/Sonnet checkpoint and
``aux_arrays.npz`` (``subsample_idx``: the training indices the run used;
``correctness_{train,removed,test}`` with ``index_{train,removed,test}``: the final model's
per-example correctness).  Those indices count examples in F&Z's own ImageNet order, which
``imagenet_index.npz`` (``tr_filenames``/``tr_labels``, ``tt_filenames``/``tt_labels``)
defines by file name; the workflow's population is the ImageFolder order (sorted class
folders, sorted files).  This module

* turns a TensorFlow export (:mod:`curvmia.fz_tf`, run in the TensorFlow environment) into
  a ``sonnet_resnet50`` checkpoint and checks it against TensorFlow's own outputs;
* maps F&Z's train and validation orders onto the population and the held-out split by
  file name, checking every label (class order);
* builds the membership matrix (one row per run) in the population's order;
* measures how far a converted model's correctness on the prepared population and held-out
  split agrees with the release's ``correctness_*`` arrays.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from .checkpoint import checkpoint_meta, save_checkpoint
from .io import sha256_file
from .models import build_model

ARCH = "sonnet_resnet50"
# TensorFlow outputs the conversion must reproduce (relative max error, see check_probe)
PROBE_KEYS = ("stem", "layer1", "layer2", "layer3", "layer4", "logits")


def _npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an .npz, never unpickling (object arrays are an error naming the file)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        raise ValueError(f"{path}: holds object (pickled) arrays, not plain ones: {e}") from e


# ---------------------------------------------------------------- weights


def model_from_export(arrays: dict[str, np.ndarray], num_classes: int = 1000) -> nn.Module:
    """The ``sonnet_resnet50`` holding an export's ``w/<name>`` weights (every parameter and
    BatchNorm statistic must be there, with its shape; ``num_batches_tracked`` is 0)."""
    model = build_model(ARCH, num_classes, 3)
    weights = {k[2:]: torch.from_numpy(np.asarray(v)) for k, v in arrays.items() if k[:2] == "w/"}
    state = model.state_dict()
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            weights.setdefault(k, torch.zeros_like(v))
    missing = sorted(set(state) - set(weights))
    extra = sorted(set(weights) - set(state))
    if missing or extra:
        raise ValueError(f"export: missing weights {missing[:5]}, unexpected {extra[:5]}")
    bad = [k for k in state if tuple(state[k].shape) != tuple(weights[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(
            f"export: {k} has shape {tuple(weights[k].shape)}, the model {tuple(state[k].shape)}"
        )
    model.load_state_dict(weights)
    return model.eval()


def torch_probe(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The PyTorch model's outputs at the points :func:`curvmia.fz_tf.probe_outputs` taps."""
    out = {}
    with torch.no_grad():
        h = torch.relu(model.bn1(model.conv1(x)))
        h = model.maxpool(model.pool_pad(h))
        out["stem"] = h
        for i in range(1, 5):
            h = getattr(model, f"layer{i}")(h)
            out[f"layer{i}"] = h
        out["logits"] = model(x)
    return out


def probe_errors(model: nn.Module, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Relative error max|torch - tf| / max|tf| of each probed output."""
    x = torch.from_numpy(np.asarray(arrays["probe/input"]))
    got = torch_probe(model, x)
    errs = {}
    for k in PROBE_KEYS:
        ref = torch.from_numpy(np.asarray(arrays[f"probe/{k}"]))
        if tuple(ref.shape) != tuple(got[k].shape):
            raise ValueError(
                f"probe {k}: TensorFlow shape {tuple(ref.shape)}, PyTorch {got[k].shape}"
            )
        errs[k] = float((got[k] - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
    return errs


def convert_export(
    export: str | os.PathLike,
    out: str | os.PathLike,
    *,
    rtol: float = 1e-4,
    meta: dict | None = None,
) -> dict:
    """Export .npz → curvmia checkpoint ``out`` (``state_dict`` + build metadata, loadable
    with ``weights_only=True`` by ``curvmia.checkpoint.load_checkpoint``).  Stops, writing
    nothing, when any probed output differs from TensorFlow's by more than ``rtol``."""
    arrays = _npz(export)
    model = model_from_export(arrays)
    errs = probe_errors(model, arrays)
    worst = max(errs, key=errs.get)
    if errs[worst] > rtol:
        raise ValueError(
            f"{export}: the converted model's {worst} differs from TensorFlow's by "
            f"{errs[worst]:.2e} relative (> {rtol:g}); all: {errs}"
        )
    info = {
        "probe_rel_error": errs,
        "probe_size": int(arrays["probe/input"].shape[-1]),
        "tf_epoch": int(arrays["meta/epoch"]),
        "tf_global_step": int(arrays["meta/global_step"]),
    }
    meta = checkpoint_meta(
        arch=ARCH,
        model_kwargs={},
        num_classes=model.num_classes,
        in_chans=3,
        source={"format": "feldman-zhang-sonnet", **info, **(meta or {})},
    )
    save_checkpoint(out, model, meta)
    return info


# ---------------------------------------------------------------- example order


def load_index(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """F&Z's ``imagenet_index.npz``: file base names (str) and labels (0-999) per split
    (``tr``: train, ``tt``: validation); an example's index is its position.

    The released file may store its names as object arrays, which only unpickle with
    ``allow_pickle`` (the caller checks the file's sha256 first: ``fz.index_sha256``).
    """
    try:
        z = _npz(path)
    except ValueError as e:
        if not allow_pickle:
            raise ValueError(
                f"{e}; set fz.index_sha256 to this file's sha256 to allow reading it"
            ) from e
        with np.load(path, allow_pickle=True) as zz:
            z = {k: zz[k] for k in zz.files}
    out = {}
    for split in ("tr", "tt"):
        names, labels = z.get(f"{split}_filenames"), z.get(f"{split}_labels")
        if names is None or labels is None:
            raise ValueError(f"{path}: no {split}_filenames / {split}_labels arrays")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
        out[f"{split}_filenames"] = np.asarray([os.path.basename(n) for n in names])
        out[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    return out


def order_map(
    fz_names: np.ndarray,
    fz_labels: np.ndarray,
    pop_files: list,
    pop_labels: np.ndarray,
    *,
    what: str = "imagenet_index.npz",
) -> np.ndarray:
    """``perm`` with ``perm[i]`` = the population position of F&Z's example ``i``.

    Matched by file base name; every F&Z example must be in the population exactly once
    (and vice versa), and its F&Z label must be the population's label there: a label
    mismatch means the class folders are not ImageNet's synset order.
    """
    names = [os.path.basename(str(f)) for f in pop_files]
    where = {n: p for p, n in enumerate(names)}
    if len(where) != len(names):
        from collections import Counter

        dup = sorted(n for n, c in Counter(names).items() if c > 1)[:3]
        raise ValueError(f"data.path: file names repeat across class folders: {dup}")
    if len(fz_names) != len(names):
        raise ValueError(
            f"{what}: {len(fz_names)} examples, the population {len(names)}: not the same "
            "ImageNet train set"
        )
    perm = np.empty(len(fz_names), dtype=np.int64)
    for i, n in enumerate(fz_names.tolist()):
        p = where.get(n)
        if p is None:
            raise ValueError(f"{what}: example {i} ({n}) is not in the population (data.path)")
        perm[i] = p
    if len(np.unique(perm)) != len(perm):
        raise ValueError(f"{what}: file names repeat")
    bad = np.flatnonzero(np.asarray(pop_labels)[perm] != np.asarray(fz_labels))
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{what}: {len(bad)} labels differ from the population's, e.g. {fz_names[i]}: "
            f"F&Z label {fz_labels[i]}, population {pop_labels[perm[i]]} (class folders must "
            "be the 1000 ImageNet synsets, sorted)"
        )
    return perm


# ---------------------------------------------------------------- membership


def check_aux(aux: dict[str, np.ndarray], n: int, n_test: int, what: str) -> None:
    """An ``aux_arrays.npz`` is self-consistent over ``n`` training and ``n_test``
    validation examples."""
    need = ["subsample_idx"]
    need += [f"{a}_{s}" for s in ("train", "removed", "test") for a in ("index", "correctness")]
    missing = [k for k in need if k not in aux]
    if missing:
        raise ValueError(f"{what}: missing arrays {missing} (has {sorted(aux)})")
    sub = np.asarray(aux["subsample_idx"])
    if sub.ndim != 1 or len(np.unique(sub)) != len(sub) or sub.min() < 0 or sub.max() >= n:
        raise ValueError(f"{what}: subsample_idx is not a set of indices in [0, {n})")
    for s in ("train", "removed", "test"):
        if len(aux[f"index_{s}"]) != len(aux[f"correctness_{s}"]):
            raise ValueError(f"{what}: index_{s} and correctness_{s} differ in length")
    seen = np.concatenate([aux["index_train"], aux["index_removed"]])
    if len(seen) != n or not np.array_equal(np.sort(seen), np.arange(n)):
        raise ValueError(f"{what}: index_train + index_removed are not the {n} training examples")
    if not np.array_equal(np.sort(aux["index_train"]), np.sort(sub)):
        raise ValueError(f"{what}: index_train is not subsample_idx")
    test = np.asarray(aux["index_test"])
    if len(test) != n_test or not np.array_equal(np.sort(test), np.arange(n_test)):
        raise ValueError(f"{what}: index_test is not the {n_test} validation examples")


def membership_matrix(subsets: list[np.ndarray], perm: np.ndarray) -> np.ndarray:
    """(runs, population) bool: row r marks run r's ``subsample_idx`` at population positions."""
    out = np.zeros((len(subsets), len(perm)), dtype=bool)
    for r, sub in enumerate(subsets):
        out[r, perm[np.asarray(sub, dtype=np.int64)]] = True
    return out


def released_correctness(
    aux: dict[str, np.ndarray], perm: np.ndarray, splits: tuple[str, ...] = ("train", "removed")
) -> np.ndarray:
    """The release's correctness over ``splits``, moved to the workflow's order (``perm``:
    the population's for train+removed, the held-out split's for test)."""
    out = np.zeros(len(perm), dtype=bool)
    for s in splits:
        out[perm[np.asarray(aux[f"index_{s}"], dtype=np.int64)]] = np.asarray(
            aux[f"correctness_{s}"]
        ).astype(bool)
    return out


def predicted_correct(
    model: nn.Module,
    images_u8: np.ndarray,
    labels: np.ndarray,
    positions: np.ndarray,
    mean,
    std,
    device: torch.device,
    batch_size: int = 128,
) -> np.ndarray:
    """Top-1 correctness of ``model`` at the population ``positions`` (prepared images;
    sorted positions read a memory-mapped array in order)."""
    from .transforms import normalize, to_float

    out = np.zeros(len(positions), dtype=bool)
    model = model.to(device).eval()
    with torch.no_grad():
        for s in range(0, len(positions), batch_size):
            idx = np.asarray(positions[s : s + batch_size])
            x = torch.from_numpy(np.ascontiguousarray(images_u8[idx])).to(device)
            pred = model(normalize(to_float(x), mean, std)).argmax(1).cpu().numpy()
            out[s : s + len(idx)] = pred == np.asarray(labels)[idx]
    return out


def agreement_report(
    predicted: np.ndarray, released: np.ndarray, member: np.ndarray
) -> dict[str, float | int | None]:
    """Agreement of predicted and released correctness, overall and by membership (None
    where no checked image is a member, or none a non-member)."""
    same = predicted == released
    return {
        "n": int(len(same)),
        "agreement": float(same.mean()),
        "agreement_members": float(same[member].mean()) if member.any() else None,
        "agreement_nonmembers": float(same[~member].mean()) if (~member).any() else None,
        "acc_predicted": float(predicted.mean()),
        "acc_released": float(released.mean()),
    }


def check_sample(n: int, k: int, seed: int) -> np.ndarray:
    """Seeded population positions the correctness check runs on (all when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def population_order(
    index_path: str | os.PathLike,
    index_sha256: str | None,
    data_path: str | os.PathLike,
    manifest: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """F&Z's train and validation orders → positions in the prepared ImageFolder dataset's
    population (train/) and held-out split (val/).

    ``index_path`` must hash to ``index_sha256`` when that is given (then it may hold
    pickled arrays); the class folders and file counts of ``data_path`` must be those the
    dataset was prepared from.
    """
    from .imagefolder import scan_imagefolder

    if index_sha256 is not None:
        got = sha256_file(index_path)
        if got != index_sha256:
            raise ValueError(f"fz.index_sha256: {index_path} hashes to {got}, not {index_sha256}")
    index = load_index(index_path, allow_pickle=index_sha256 is not None)
    if manifest.get("split", {}).get("official") is not True:
        raise ValueError(
            "data.path: needs val/ (the official split): F&Z trained on all of ImageNet's "
            "train/ images, so the population must be exactly train/ and the held-out split val/"
        )
    classes, splits = scan_imagefolder(data_path)
    (files, labels), (vfiles, vlabels) = splits["train"], splits["val"]
    if (classes, len(files), len(vfiles)) != (
        manifest["classes"],
        manifest["n_train"],
        manifest["n_test"],
    ):
        raise ValueError(
            f"data.path: {data_path} no longer lists the classes and the {manifest['n_train']} "
            f"+ {manifest['n_test']} images the dataset was prepared from (prepare it again)"
        )
    what = str(index_path)
    train = order_map(index["tr_filenames"], index["tr_labels"], files, labels, what=what)
    test = order_map(index["tt_filenames"], index["tt_labels"], vfiles, vlabels, what=what)
    return train, test


def check_agreement(reports: dict[str, dict], min_agreement: float, what: str) -> None:
    """Stop when converted and released correctness agree on less than ``min_agreement``
    of the checked images of any split (``reports``: split name → agreement_report)."""
    for split, r in reports.items():
        if r["agreement"] >= min_agreement:
            continue
        by = {k: "n/a" if r[k] is None else f"{r[k]:.4f}" for k in r}
        raise ValueError(
            f"{what}: the converted model's correctness agrees with the release's "
            f"correctness_* arrays on {by['agreement']} of {r['n']} {split} images "
            f"(< fz.min_agreement {min_agreement}); members {by['agreement_members']}, "
            f"non-members {by['agreement_nonmembers']}; accuracy {by['acc_predicted']} "
            f"here vs {by['acc_released']} released. An example-order, class-order or "
            "preprocessing mismatch: see docs/audit-your-model.md"
        )
