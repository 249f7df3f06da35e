"""Atomic file writing: outputs appear complete or not at all.

Every writer in the package goes through these helpers so that a crash or a
validation error never leaves a half-written file that Snakemake (or a user)
could mistake for a finished result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    ``suffix`` lets writers that insist on an extension (``np.savez``) keep it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save arrays to an uncompressed ``.npz`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` into a plain dict (file closed on return).

    Never unpickles; a truncated or foreign file is a ``ValueError`` that names it.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def sha256_array(a: np.ndarray) -> str:
    """Content hash of an array: dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def config_hash(sub_config: Any) -> str:
    """Stable hash of a JSON-serialisable config fragment (key order ignored)."""
    blob = json.dumps(sub_config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def write_generated(out: Path, text: str, command: str, check: bool = False) -> None:
    """Write a generated file atomically; with ``check``, exit 1 instead when it differs.

    ``command`` is what regenerates it, named in the stale message (`make docs` targets).
    """
    import sys

    if check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            sys.exit(f"{out} is stale: run `make docs` ({command})")
        return
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    print(f"wrote {out}")


def md5_file(path: str | os.PathLike) -> str:
    """md5 hex digest of a file (the checksum the CIFAR archives are published with)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()
