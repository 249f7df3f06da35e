"""What a checkpoint was made from, and the check that every load makes against it.

A checkpoint's identity is its mask row, the hash of its training recipe, a hash of its
member indices and a hash of the prepared data's content. Training stores it; scoring and
everything else that loads a model compares it with what the workflow expects, so a model
copied over another row's file, or made with another recipe, mask or data, is refused with
a message that names the file and both values.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from .io import config_hash, load_npz

# what a checkpoint's identity consists of (training, imports and sweeps write these keys)
CHECKPOINT_KEYS = ("row", "train_hash", "members_hash", "data_hash")


def members_hash(indices: np.ndarray) -> str:
    """Hash of a training subset: its sorted member indices (int64)."""
    idx = np.sort(np.asarray(indices, dtype=np.int64).ravel())
    return hashlib.sha256(idx.tobytes()).hexdigest()[:16]


def data_hash(manifest: dict[str, Any]) -> str:
    """Hash of a prepared dataset's content: array hashes, normalisation, sizes.

    Where the data came from (archive path, mirror) is left out: it does not change the
    content.
    """
    keys = ("sha256", "mean", "std", "num_classes", "n_train", "n_test", "image_shape")
    return config_hash({k: manifest.get(k) for k in keys})


def members_of(path: str | os.PathLike, row: int | None = None) -> np.ndarray:
    """Member indices from masks.npz (row ``row``) or from a sweep's boolean members .npy."""
    if str(path).endswith(".npz"):
        masks = load_npz(path)["masks"]
        if row is None or not 0 <= row < len(masks):
            raise ValueError(f"{path}: has no mask row {row} (rows 0..{len(masks) - 1})")
        return np.flatnonzero(masks[row])
    try:
        return np.flatnonzero(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: cannot read the members array: {e}") from None


def check_identity(path: str | os.PathLike, meta: dict[str, Any], expected: dict) -> None:
    """Raise ``ValueError`` naming ``path`` and both values when ``meta`` differs from
    ``expected`` on any identity key that ``expected`` gives."""
    for key, want in expected.items():
        got = meta.get(key)
        if got != want:
            raise ValueError(
                f"{path}: checkpoint {key} is {got!r}, the workflow expects {want!r}: this "
                "file was made from another row, recipe, mask or dataset; delete it (or "
                "rerun with --forcerun train) so that it is trained again"
            )


def train_hash(cfg: dict) -> str:
    """Hash of the training sub-config: attack or scoring edits never change it."""
    return config_hash(cfg)


def score_identity(checkpoint_meta: dict[str, Any], scoring: dict[str, Any]) -> dict[str, Any]:
    """The identity a score file carries: that of the checkpoint it was computed from (the
    keys it has of CHECKPOINT_KEYS; a sweep model has no row) plus ``scoring_hash``, the hash
    of the scoring settings that change its numbers (the scoring section less its compute
    knobs, exactly as the workflow passes it to the scorer)."""
    ident = {k: checkpoint_meta[k] for k in CHECKPOINT_KEYS if k in checkpoint_meta}
    return {**ident, "scoring_hash": config_hash(scoring)}


def checkpoint_identity(
    recipe_hash: str, members: np.ndarray, manifest: dict[str, Any], row: int | None = None
) -> dict[str, Any]:
    """What a checkpoint is made from (CHECKPOINT_KEYS; a sweep model has no row): every
    later load compares it.  ``recipe_hash``: :func:`train_hash` of the recipe, or an
    imported entry's hash."""
    ident = {"row": row} if row is not None else {}
    return {
        **ident,
        "train_hash": recipe_hash,
        "members_hash": members_hash(members),
        "data_hash": data_hash(manifest),
    }
