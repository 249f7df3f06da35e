"""Models that exist already: imported model files, their membership and input contract.

An experiment may import some or all of its mask rows instead of training them (config
section ``imported``; docs/audit-your-model.md). Each entry names a model file with its
sha256, its format, its mask row and role, where its members come from and the input
contract it was trained with. Every check here raises a ``ValueError`` that names the
config key (``imported.models[i].<field>``) and the file, so that a bad entry stops the
workflow before any job. An imported model becomes an ordinary curvmia checkpoint
(scripts/import_model.py) carrying the same identity a trained one has: row, a hash of
its entry (in place of the recipe hash; it holds the file's sha256), members hash and data
hash; scoring and attacks then treat it like a trained model.
"""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING, Any

import numpy as np

from .io import config_hash, sha256_file

if TYPE_CHECKING:  # torch is imported by the functions that need it: the workflow's
    import torch  # parse imports this module (rules/common.smk) and stays torch-free
    from torch import nn

FORMATS = ("state_dict", "safetensors", "torchscript")


def key(i: int, field: str) -> str:
    """Config key of field ``field`` of entry ``i`` (for error messages)."""
    return f"imported.models[{i}].{field}"


def import_hash(entry: dict[str, Any]) -> str:
    """The identity hash an imported row's checkpoint carries in place of the recipe hash:
    the entry's content (file sha256, format, architecture, members source, contract)."""
    return "imported-" + config_hash({k: v for k, v in entry.items() if k != "path"})


# ---------------------------------------------------------------- config-time checks


def dataset_contract(data_cfg: dict[str, Any]) -> dict[str, Any]:
    """What the dataset feeds a model, as far as the config tells before preparation:
    class count, channels, image size, resize and crop, population size (None where
    only the prepared manifest knows)."""
    ds = data_cfg["dataset"]
    if ds == "digits":
        return {"num_classes": 10, "in_chans": 1, "image_size": 8, "resize": None,
                "crop": "none", "n_population": 1797 - data_cfg["test_size"]}  # fmt: skip
    if ds in ("cifar10", "cifar100"):
        return {"num_classes": 10 if ds == "cifar10" else 100, "in_chans": 3,
                "image_size": 32, "resize": None, "crop": "none",
                "n_population": 50000}  # fmt: skip
    return {"num_classes": None, "in_chans": 3, "image_size": data_cfg["image_size"],
            "resize": data_cfg["resize"], "crop": "center", "n_population": None}  # fmt: skip


def check_contract(
    contract: dict[str, Any],
    have: dict[str, Any],
    where: str,
    path: str,
) -> None:
    """The model's declared input contract against what the dataset feeds it (``have``:
    :func:`dataset_contract`, or the prepared manifest's values). Fields of ``have`` that
    are None are not known yet and not checked."""
    for field in ("in_chans", "num_classes", "image_size", "resize", "crop"):
        want = have.get(field)
        if want is not None and contract[field] != want:
            raise ValueError(
                f"{where}.input.{field}: {path} declares {contract[field]!r}, the dataset "
                f"gives {want!r}"
            )
    c = contract["in_chans"]
    for field in ("mean", "std"):
        if len(contract[field]) != c:
            raise ValueError(
                f"{where}.input.{field}: {path} declares {len(contract[field])} values for "
                f"{c} channels"
            )
    lo, hi = contract["range"]
    if not hi > lo:
        raise ValueError(f"{where}.input.range: {path} declares [{lo}, {hi}] (need lo < hi)")
    if have.get("mean") is None:
        return
    # the workflow feeds (x - mean_d) / std_d with x in [0, 1]; a model expecting
    # (x' - mean) / std with x' = lo + (hi - lo) x sees the same numbers exactly when
    # mean = lo + (hi - lo) mean_d and std = (hi - lo) std_d
    span = hi - lo
    for field, want in (
        ("mean", [lo + span * m for m in have["mean"]]),
        ("std", [span * s for s in have["std"]]),
    ):
        if not np.allclose(contract[field], want, rtol=1e-3, atol=1e-6 * span):
            raise ValueError(
                f"{where}.input.{field}: {path} declares {contract[field]} for inputs in "
                f"[{lo}, {hi}]; the prepared data is normalised so that this model would need "
                f"{[round(v, 6) for v in want]} (data mean {have['mean']}, std {have['std']} "
                "in [0, 1] units): set data.stats to the model's normalisation"
            )


def check_file(path: str, sha256: str | None, where: str) -> None:
    """The file exists and has the declared sha256."""
    if not os.path.isfile(path):
        raise ValueError(f"{where}.path: {path}: no such file")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise ValueError(
                f"{where}.sha256: {path} has sha256 {got}, the config declares {sha256}: "
                "the file changed or is not the one meant"
            )


def read_state_dict(path: str, fmt: str, where: str) -> dict[str, torch.Tensor]:
    """Tensors of a ``state_dict`` (torch, weights-only) or ``safetensors`` file."""
    import torch

    if fmt == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{where}.format: {path} is not a safetensors file ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{where}.format: {path} is a pickled object, not plain weights (a full model "
            "saved with torch.save(model)?): its loading would run code. Save "
            f"model.state_dict() instead, or use safetensors ({str(e).splitlines()[0]})"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise ValueError(f"{where}.format: {path} is not a torch state dict ({e})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a {"state_dict": ..., metadata} bundle
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{where}.format: {path} holds no state dict (a mapping of tensors)")
    return obj


def build_from_state(
    state: dict[str, torch.Tensor], entry: dict[str, Any], where: str, path: str
) -> nn.Module:
    """The entry's architecture with ``state`` loaded (strict: every key, every shape)."""
    from .models import build_model

    c = entry["input"]
    try:
        model = build_model(entry["arch"], c["num_classes"], c["in_chans"], entry["model_kwargs"])
    except (TypeError, ValueError, RuntimeError, AssertionError, KeyError) as e:
        raise ValueError(
            f"{where}.arch: {entry['arch']!r} with model_kwargs {entry['model_kwargs']} does "
            f"not build ({e})"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"{where}: {path} does not fit {entry['arch']!r} with model_kwargs "
            f"{entry['model_kwargs']} and {c['num_classes']} classes, {c['in_chans']} "
            f"channels (input.num_classes / input.in_chans / arch): {str(e)[:600]}"
        ) from None
    return model.eval()


def load_model(entry: dict[str, Any], where: str) -> nn.Module:
    """The imported model in eval mode, on the CPU (no sha256 check: see check_file)."""
    import torch

    path, fmt = entry["path"], entry["format"]
    if fmt == "torchscript":
        if not entry.get("trust"):
            raise ValueError(
                f"{where}.trust: {path} is TorchScript, a program rather than weights; it "
                "is only loaded with trust: true in its entry"
            )
        try:
            return torch.jit.load(path, map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as e:
            raise ValueError(f"{where}.format: {path} is not a TorchScript file ({e})") from None
    if fmt not in FORMATS:
        raise ValueError(f"{where}.format: {fmt!r} is not one of {FORMATS}")
    if not entry.get("arch"):
        raise ValueError(f"{where}.arch: format {fmt} needs the architecture's name")
    return build_from_state(read_state_dict(path, fmt, where), entry, where, path)


def output_classes(model: nn.Module, contract: dict[str, Any]) -> int:
    """Number of logits the model gives for one input of the declared shape."""
    import torch

    c, s = contract["in_chans"], contract["image_size"]
    with torch.no_grad():
        out = model(torch.zeros(1, c, s, s))
    return int(out.shape[-1])


# ---------------------------------------------------------------- membership


def _plain(path: str, where: str) -> np.ndarray | dict[str, np.ndarray]:
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "object" in str(e):
            raise ValueError(
                f"{where}.path: {path} holds an object (pickled) array; membership must be a "
                "plain boolean or integer array"
            ) from None
        raise ValueError(f"{where}.path: {path} is not a readable array ({e})") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{where}.path: {path} is not a readable array ({e})") from None


def _one_array(obj: np.ndarray | dict, name: str, path: str, where: str) -> np.ndarray:
    if isinstance(obj, np.ndarray):
        return obj
    if name in obj:
        return obj[name]
    if len(obj) == 1:
        return next(iter(obj.values()))
    raise ValueError(f"{where}.path: {path} holds {sorted(obj)}; expected one array or {name!r}")


def read_members(spec: dict[str, Any], n_population: int | None, where: str) -> np.ndarray:
    """Boolean membership over the population from a members spec (``where``: its key).

    ``matrix``: row ``index`` of a (models, population) boolean matrix; ``indices``: a
    1-D integer array of population indices; ``fz_aux``: Feldman & Zhang's
    ``aux_arrays.npz`` (its ``subsample_idx``, indices in the population's order).
    ``n_population`` None (not known yet) checks the shape against the matrix alone.
    """
    src, path = spec["source"], spec["path"]
    obj = _plain(path, where)
    if src == "matrix":
        m = _one_array(obj, "membership", path, where)
        if m.dtype != bool or m.ndim != 2:
            raise ValueError(
                f"{where}.path: {path} is a {m.dtype} array of shape {m.shape}; a membership "
                "matrix is a 2-D boolean array (models, population)"
            )
        if n_population is not None and m.shape[1] != n_population:
            raise ValueError(
                f"{where}.path: {path} has shape {m.shape}; the population has "
                f"{n_population} examples, so it must be (models, {n_population})"
            )
        i = spec.get("index")
        if i is None or not 0 <= i < m.shape[0]:
            raise ValueError(f"{where}.index: {i!r} is not a row of {path} (0..{m.shape[0] - 1})")
        return m[i].copy()
    if src == "fz_aux":
        if not isinstance(obj, dict) or "subsample_idx" not in obj:
            raise ValueError(f"{where}.path: {path} has no subsample_idx array (aux_arrays.npz)")
        idx = obj["subsample_idx"]
    else:
        idx = _one_array(obj, "indices", path, where)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"{where}.path: {path} is a {idx.dtype} array of shape {idx.shape}; an index list "
            "is a 1-D integer array"
        )
    n = n_population if n_population is not None else int(idx.max(initial=-1)) + 1
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"{where}.path: {path} has indices outside the population 0..{n - 1}")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"{where}.path: {path} repeats an index")
    out = np.zeros(n, dtype=bool)
    out[idx] = True
    return out


# ---------------------------------------------------------------- the whole section


def check_section(
    entries: list[dict[str, Any]],
    *,
    shadows: list[int],
    targets: list[int],
    data_cfg: dict[str, Any],
    deep: bool = True,
) -> None:
    """Every check of the ``imported.models`` entries a config allows before any job.

    ``deep``: also hash, open and build every file (the submitting process; cluster jobs
    that parse the workflow again skip it).
    """
    have = dataset_contract(data_cfg)
    seen: dict[int, int] = {}
    for i, e in enumerate(entries):
        r = e["row"]
        if r in seen:
            raise ValueError(f"{key(i, 'row')}: row {r} is imported twice (also entry {seen[r]})")
        seen[r] = i
        check_entry(i, e, targets if e["role"] == "target" else shadows, have)
        if deep:
            check_entry_files(i, e, have["n_population"])


def check_entry(i: int, e: dict[str, Any], rows: list[int], have: dict[str, Any]) -> None:
    """The checks of entry ``i`` that need no file: its row among the ``rows`` of its role,
    its members, architecture and trust, its input contract against the dataset's ``have``."""
    if e["row"] not in rows:
        raise ValueError(
            f"{key(i, 'row')}: row {e['row']} has role {e['role']} but is not one of masks."
            f"{'targets' if e['role'] == 'target' else 'shadows'} {rows}"
        )
    if e["members"] is None and e["role"] == "shadow":
        raise ValueError(
            f"{key(i, 'members')}: a shadow's membership must be known (only a target may "
            "have members: null)"
        )
    if e["format"] != "torchscript" and not e.get("arch"):
        raise ValueError(f"{key(i, 'arch')}: format {e['format']} needs the architecture")
    if e["format"] == "torchscript" and not e.get("trust"):
        raise ValueError(
            f"{key(i, 'trust')}: {e['path']} is TorchScript, a program rather than weights; "
            "set trust: true in this entry only if you trust its author"
        )
    check_contract(e["input"], have, f"imported.models[{i}]", e["path"])


def check_entry_files(i: int, e: dict[str, Any], n_population: int | None) -> None:
    """The checks of entry ``i`` that open its files: sha256, the model built and its
    logits counted, the members read (imports torch)."""
    where = f"imported.models[{i}]"
    check_file(e["path"], e["sha256"], where)
    model = load_model(e, where)
    got = output_classes(model, e["input"])
    if got != e["input"]["num_classes"]:
        raise ValueError(
            f"{key(i, 'input.num_classes')}: {e['path']} gives {got} logits, the entry "
            f"declares {e['input']['num_classes']}"
        )
    if e["members"] is not None:
        mw = f"{where}.members"
        check_file(e["members"]["path"], e["members"]["sha256"], mw)
        read_members(e["members"], n_population, mw)
