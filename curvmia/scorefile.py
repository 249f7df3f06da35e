"""What a score file may hold, field by field, checked on every read.

The scorer (curvmia/scores.py) writes float64 arrays of shape (N, Q) per field, population
and test split (``test_`` prefix). A file that breaks these rules (a diverged model, a
damaged or foreign file) is an error naming the file and the field, instead of a metric
computed from NaNs.

| field | legitimate values |
|---|---|
| loss | finite, >= 0 |
| p_true, p_max | finite, in [0, 1] |
| phi, phi_max, mentr | finite (logit features are never NaN) |
| curv_zo | finite |
| curv_hutch | all NaN when scoring.hutch_nprobes is 0 (not computed), else finite |
| curv_hutch_sq | all NaN when scoring.hutch_nprobes is 0, else finite and >= 0 |
| loss_f32, p_true_f32, p_max_f32, mentr_f32 | optional (scoring.variant paper only): |
|   | float32, with the rules of the float64 field of the same name |

The probe count comes from the file's ``meta``; a file without it may hold the white-box
fields all NaN or all finite.

A score file's ``meta`` also carries ``identity`` (curvmia/identity.py: score_identity): the
identity of the checkpoint it was computed from plus the scoring settings' hash. Every reader
given the identity the workflow expects checks it (check_score_identity); a file without one
was written before score files carried an identity and is refused as stale.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from .identity import CHECKPOINT_KEYS
from .io import config_hash, load_npz

FIELDS = (
    "loss",
    "p_true",
    "p_max",
    "phi",
    "phi_max",
    "mentr",
    "curv_zo",
    "curv_hutch",
    "curv_hutch_sq",
)
HUTCH_FIELDS = ("curv_hutch", "curv_hutch_sq")
# the loss and probabilities as the released code computed them (float32, with its ties at
# zero loss and p = 1): written under scoring.variant paper only
F32_FIELDS = ("loss_f32", "p_true_f32", "p_max_f32", "mentr_f32")
RANGES = {"loss": (0.0, np.inf), "p_true": (0.0, 1.0), "p_max": (0.0, 1.0)}
RANGES["curv_hutch_sq"] = (0.0, np.inf)
RANGES.update({f + "_f32": RANGES[f] for f in ("loss", "p_true", "p_max")})


def check_score_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` ``<path>: field <f>: ...`` for the first field that breaks the
    rules of the module docstring."""
    try:
        meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
        nprobes = (meta.get("scoring") or {}).get("hutch_nprobes")
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: field meta: unreadable ({e})") from None
    for prefix in ("", "test_"):
        shape = None
        for f in FIELDS + F32_FIELDS:
            key = prefix + f
            if key not in arrays:
                if f in F32_FIELDS:
                    continue
                raise ValueError(f"{path}: field {key}: missing")
            a = np.asarray(arrays[key])
            if a.dtype.kind != "f" or a.ndim != 2 or (shape is not None and a.shape != shape):
                raise ValueError(
                    f"{path}: field {key}: expected float (N, Q), got {a.dtype} {a.shape}"
                )
            shape = a.shape
            # without a recorded probe count (files from other tools), all NaN also passes
            if f in HUTCH_FIELDS and (nprobes == 0 or (nprobes is None and np.isnan(a).all())):
                if not np.isnan(a).all():
                    raise ValueError(
                        f"{path}: field {key}: must be all NaN with hutch_nprobes 0 (not computed)"
                    )
                continue
            bad = ~np.isfinite(a)
            if bad.any():
                raise ValueError(
                    f"{path}: field {key}: {int(bad.sum())} of {a.size} values are NaN or"
                    f" infinite (first at sample {int(np.argwhere(bad)[0][0])}); the scorer"
                    " never writes those: a diverged model or a damaged file"
                )
            if f in F32_FIELDS and a.dtype != np.float32:
                raise ValueError(f"{path}: field {key}: expected float32, got {a.dtype}")
            lo, hi = RANGES.get(f, (-np.inf, np.inf))
            if a.min() < lo or a.max() > hi:
                raise ValueError(
                    f"{path}: field {key}: values in [{a.min():.6g}, {a.max():.6g}],"
                    f" expected within [{lo}, {hi}]"
                )


def _rebuild(path: str | os.PathLike) -> str:
    return f"delete it and rerun `snakemake` (it is rebuilt), or `snakemake --forcerun {path}`"


def check_score_identity(path: str | os.PathLike, meta: dict, expected: dict) -> None:
    """Raise ``ValueError`` naming ``path``, the field, both values and the rebuild command
    when the identity in ``meta`` differs from ``expected`` on any key ``expected`` gives
    (checkpoint keys first, the row before the others), or when ``meta`` has none."""
    ident = meta.get("identity")
    if not isinstance(ident, dict):
        raise ValueError(
            f"{path}: no identity in the score file's meta (written before score files "
            f"carried an identity, or by another tool); {_rebuild(path)}"
        )
    order = (*CHECKPOINT_KEYS, "scoring_hash")
    for key in sorted(expected, key=lambda k: (order.index(k) if k in order else len(order), k)):
        got, want = ident.get(key), expected[key]
        if got != want:
            what = "other scoring settings" if key == "scoring_hash" else "another model"
            raise ValueError(
                f"{path}: score file {key} is {got!r}, the workflow expects {want!r}: this "
                f"file was computed from {what}; {_rebuild(path)}"
            )


def load_score_file(path: str | os.PathLike, expect: dict | None = None) -> dict[str, np.ndarray]:
    """A score file's arrays, checked field by field (names the file and field) and, given
    ``expect``, its identity (check_score_identity)."""
    arrays = load_npz(path)
    check_score_arrays(path, arrays)  # meta, when present, is a readable mapping
    if expect is not None:
        meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
        check_score_identity(path, meta, expect)
    return arrays


def _read(path: str | os.PathLike, what: Callable[[Any], Any]) -> Any:
    """``what`` of the open archive; a truncated or foreign file names ``path``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return what(z)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path}: not a readable score file ({type(e).__name__}: {e})") from None


def _meta_record(z: Any) -> Any:
    if "meta" not in z.files:
        raise ValueError("no meta record")
    return json.loads(str(z["meta"]))


def read_score_meta(path: str | os.PathLike) -> dict:
    """A score file's ``meta`` record alone (the arrays are not read: cheap at paper size).

    A missing, truncated or foreign file, or one without a readable ``meta``, is a
    ``ValueError`` that names it (``FileNotFoundError`` for a missing one).
    """
    meta = _read(path, _meta_record)
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a readable score file (meta is not a mapping)")
    return meta


def score_fields(path: str | os.PathLike) -> list[str]:
    """The names of a score file's arrays (none is read); a damaged file names ``path``."""
    return _read(path, lambda z: list(z.files))


def check_score_files(paths: list[str], expected: list[dict]) -> dict[str, str]:
    """Check each score file's identity against the one expected of it (metadata alone);
    returns, per file, the hash of its identity (what an attack output records)."""
    out = {}
    for path, want in zip(paths, expected, strict=True):
        meta = read_score_meta(path)
        check_score_identity(path, meta, want)
        out[str(path)] = identity_digest(meta)
    return out


def row_digests(paths: list[str], rows: list[int]) -> dict[str, str]:
    """Per row, the identity hash of its score file, after checking that the file says it
    belongs to that row (metadata alone). For readers that also read attack outputs: what
    those recorded is then compared with these (check_recorded_inputs)."""
    out = {}
    for path, row in zip(paths, rows, strict=True):
        meta = read_score_meta(path)
        check_score_identity(path, meta, {"row": row})
        out[str(row)] = identity_digest(meta)
    return out


def identity_digest(meta: dict) -> str:
    """The hash of a score file's identity (its ``meta``), recorded by what reads it."""
    return config_hash(meta.get("identity"))


def check_recorded_inputs(path: str | os.PathLike, result: dict, current: dict) -> None:
    """Raise ``ValueError`` naming the attack output ``path``, the row, both values and the
    rebuild command when an identity hash it recorded for a score file (``result["inputs"]``:
    row -> hash) differs from the current file's (``current``), or it recorded none."""
    recorded = json.loads(str(result["inputs"])) if "inputs" in result else {}
    if not recorded and current:  # with no score files to compare with, nothing to check
        raise ValueError(
            f"{path}: records no score file identities (written before attack outputs carried"
            f" them); delete it and rerun `snakemake`, or `snakemake --forcerun {path}`"
        )
    for row, got in recorded.items():
        want = current.get(str(row))
        if want is not None and got != want:
            raise ValueError(
                f"{path}: computed from the score file of row {row} with identity {got}, the "
                f"current score file's is {want}: this result is stale; delete it and rerun "
                f"`snakemake` (it is rebuilt), or `snakemake --forcerun {path}`"
            )
