"""Provenance of a run: software, numerics, hardware and inputs that produced the results.

Written by the workflow's `provenance` rule to results/<experiment>/provenance.json, so a
result can be traced to its code (git commit), configuration (hash), container images and
the exact package versions and torch settings the jobs saw.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .io import config_hash

# The pinned runtime set (envs/requirements-*.txt); other installed distributions are listed too.
KEY_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "matplotlib",
    "PyYAML",
    "jsonschema",
)


def git_commit(repo: str | Path) -> str:
    """HEAD of the git checkout at `repo` (suffix '-dirty' with local changes), else 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        # an unpacked archive (curvmia.archive) records the commit it was made from
        manifest = Path(repo).parent / "ARCHIVE.json"
        if manifest.is_file():
            return f"{json.loads(manifest.read_text())['git_commit']} (archive)"
        return "unknown"
    return f"{head}-dirty" if status else head


def package_versions() -> dict[str, str]:
    """Every installed distribution, name -> version, sorted by name."""
    out = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out[name] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def torch_settings() -> dict[str, Any]:
    """Numerics-relevant torch switches as this process sees them, and its device/threads."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cuda_available": cuda,
        "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "num_threads": torch.get_num_threads(),
        "default_dtype": str(torch.get_default_dtype()),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def model_records(checkpoints: list[str | Path]) -> list[dict[str, Any]]:
    """Device, torch version and recipe hash each model was trained with (from its checkpoint)."""
    from .train import load_meta

    rows = []
    for p in checkpoints:
        m = load_meta(p)
        rows.append(
            {k: m.get(k) for k in ("row", "device", "torch", "train_hash", "seed", "seconds")}
        )
    return sorted(rows, key=lambda r: r["row"])


def collect(
    config: dict[str, Any],
    *,
    commit: str,
    images: dict[str, str],
    checkpoints: list[str | Path] = (),
    threads: int | None = None,
) -> dict[str, Any]:
    """The provenance record of a run of `config` (see module docstring)."""
    return {
        "experiment": config.get("experiment"),
        "git_commit": commit,
        "config_hash": config_hash(config),
        "section_hashes": {k: config_hash(v) for k, v in sorted(config.items())},
        "config": config,
        "container_images": images,
        # the image this job ran in (None outside Apptainer)
        "container": os.environ.get("APPTAINER_CONTAINER")
        or os.environ.get("SINGULARITY_CONTAINER"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "configured_threads": threads,
        "torch": torch_settings(),
        "packages": {k: md.version(k) for k in KEY_PACKAGES if _installed(k)},
        "all_packages": package_versions(),
        "models": model_records(list(checkpoints)),
    }


def _installed(name: str) -> bool:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        return False
    return True
