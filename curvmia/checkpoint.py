"""The curvmia checkpoint format: weights plus plain metadata, one file per model.

A checkpoint is ``{"state_dict": ..., **meta}`` saved with ``torch.save`` and read back with
``weights_only=True`` (no pickled code).  ``meta`` holds what rebuilds the model (``arch``,
``model_kwargs``, ``num_classes``, ``in_chans``), the identity every later load compares
(curvmia/identity.py: row, recipe or import hash, members hash, data hash) and a record of
how it was made (code, compute, torch, device, training statistics).  Every writer (training,
sweeps, imports, the Feldman & Zhang conversion) builds it with :func:`checkpoint_meta`.
An imported TorchScript model travels inside as a uint8 tensor of its file's bytes.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .identity import check_identity
from .io import atomic_path
from .models import build_model, count_params, dp_compatible


def checkpoint_meta(
    *,
    arch: str,
    model_kwargs: dict | None,
    num_classes: int,
    in_chans: int,
    identity: dict[str, Any] | None = None,
    code: dict[str, str] | None = None,
    compute: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The metadata of a checkpoint: how to rebuild the model, its identity, and how it was
    made.  ``extra`` (statistics, sweep coordinates, import source) is kept as given;
    ``code``, ``compute``, ``torch`` and ``device`` are recorded when a ``device`` is given."""
    meta = {
        "arch": arch,
        "model_kwargs": model_kwargs or {},
        "num_classes": int(num_classes),
        "in_chans": int(in_chans),
        **(identity or {}),
        **extra,
    }
    if device is not None:
        meta["code"] = code
        meta["compute"] = {"device": str(device), **(compute or {})}
        meta["torch"] = str(torch.__version__)
        meta["device"] = str(device)
    return meta


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict) -> None:
    """Weights plus plain metadata, written atomically (loadable with weights_only=True)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = {**meta, "n_params": count_params(model)}  # identifies the architecture built
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"state_dict": state, **meta}, tmp)


def load_meta(
    path: str | Path, expect: dict | None = None, device: torch.device | str = "cpu"
) -> dict:
    """A checkpoint's contents (weights-only unpickler); ``expect``: identity it must have.

    A truncated or foreign file is a ``ValueError`` that names it.
    """
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a curvmia checkpoint (no state_dict)")
    if expect:
        check_identity(path, ckpt, expect)
    return ckpt


def read_checkpoint_meta(path: str | Path) -> dict:
    """A checkpoint's metadata alone (everything but ``state_dict``), read cheaply: the
    weights are memory-mapped, never read (torch.load's ``mmap``; weights-only unpickler).

    A missing file is ``FileNotFoundError``; a truncated or foreign one a ``ValueError``
    that names it.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a curvmia checkpoint (no state_dict)")
    return {k: v for k, v in ckpt.items() if k != "state_dict"}


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu", expect: dict | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint in eval mode; return it and the metadata.

    ``expect``: the identity (curvmia/identity.py) the workflow expects of this file.
    """
    ckpt = load_meta(path, expect, device)
    state = ckpt.pop("state_dict")
    if "torchscript" in ckpt:  # an imported TorchScript model its entry trusted
        model = torchscript_from_bytes(ckpt.pop("torchscript").cpu())
    else:
        model = build_model(
            ckpt["arch"], ckpt["num_classes"], ckpt["in_chans"], ckpt["model_kwargs"]
        )
    if ckpt.get("dp_groupnorm"):
        model = dp_compatible(model)
    model.load_state_dict(state)
    model.to(device).eval()
    return model, ckpt


def torchscript_bytes(path: str) -> torch.Tensor:
    """A TorchScript file as a uint8 tensor (stored inside the imported checkpoint)."""
    with open(path, "rb") as fh:
        return torch.frombuffer(bytearray(fh.read()), dtype=torch.uint8).clone()


def torchscript_from_bytes(blob: torch.Tensor) -> nn.Module:
    """The TorchScript module stored by :func:`torchscript_bytes`."""
    return torch.jit.load(io.BytesIO(blob.numpy().tobytes()), map_location="cpu")
