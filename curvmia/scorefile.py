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
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .io import load_npz

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


def load_score_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A score file's arrays, checked field by field (names the file and field)."""
    arrays = load_npz(path)
    check_score_arrays(path, arrays)
    return arrays


def read_score_meta(path: str | os.PathLike) -> dict:
    """A score file's ``meta`` record alone (the arrays are not read: cheap at paper size).

    A missing, truncated or foreign file, or one without a readable ``meta``, is a
    ``ValueError`` that names it (``FileNotFoundError`` for a missing one).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise ValueError("no meta record")
            meta = json.loads(str(z["meta"]))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path}: not a readable score file ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a readable score file (meta is not a mapping)")
    return meta
