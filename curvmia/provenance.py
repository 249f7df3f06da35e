"""Provenance of a run: software, numerics, hardware and inputs that produced the results.

Written by the workflow's `provenance` rule to results/<experiment>/provenance.json, so a
result can be traced to its code (git commit), configuration (hash), container images and
the exact package versions and torch settings the jobs saw.
"""

from __future__ import annotations

import hashlib
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


def git(repo: str | Path, *args: str, timeout: float = 30) -> str:
    """Output of ``git -C repo <args>``; raises OSError or SubprocessError when git fails
    (no git, not a checkout, timeout)."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        timeout=timeout,
        check=True,
    ).stdout.decode()


def git_commit(repo: str | Path) -> str:
    """HEAD of the git checkout at `repo` (suffix '-dirty' with local changes), else 'unknown'."""
    try:
        head = git(repo, "rev-parse", "HEAD").strip()
        status = git(repo, "status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.SubprocessError):
        # an unpacked archive (curvmia.archive) records the commit it was made from
        manifest = Path(repo).parent / "ARCHIVE.json"
        if manifest.is_file():
            return f"{json.loads(manifest.read_text())['git_commit']} (archive)"
        return "unknown"
    return f"{head}-dirty" if status else head


PACKAGE_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = PACKAGE_DIR.parent / "scripts"


def code_hash(script: str) -> str:
    """sha256 (16 hex) of the code a job runs: every module of the package and its entry
    script (``scripts/<script>``). A change to any of them changes the hash."""
    h = hashlib.sha256()
    for f in [*sorted(PACKAGE_DIR.glob("*.py")), SCRIPTS_DIR / script]:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_record(script: str) -> dict[str, str]:
    """What an output records about the code that made it: commit, code hash, script."""
    return {
        "commit": git_commit(PACKAGE_DIR.parent),
        "code_hash": code_hash(script),
        "script": script,
    }


def kernel_record() -> dict[str, Any]:
    """What identifies the numerical kernels a job ran: the CPU model and its flags, and
    torch's BLAS (MKL, OpenBLAS) and oneDNN versions. Two machines whose records differ
    may give results that differ in the last bits (docs/reruns.md)."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    for line in info:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            cpu = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = value.strip()
    lines = [ln.strip(" -") for ln in torch.__config__.show().splitlines()]
    settings = dict(
        kv.split("=", 1) for ln in lines if ln.startswith("Build settings:")
        for kv in ln.removeprefix("Build settings:").replace(" ", "").split(",") if "=" in kv
    )  # fmt: skip
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_blas": settings.get("BLAS_INFO"),
        "blas_version": next((ln for ln in lines if "Math Kernel Library" in ln), None)
        or next((ln for ln in lines if "BLAS" in ln and "Version" in ln), None),
        "onednn_version": next((ln for ln in lines if "MKL-DNN" in ln or "oneDNN" in ln), None),
    }


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
    """Per model: row, recipe hash, the compute knobs and the code it was trained with
    (an imported model: its source file, sha256 and format instead of a training)."""
    from .checkpoint import load_meta

    rows = []
    for p in checkpoints:
        m = load_meta(p)
        rec = {k: m.get(k) for k in ("row", "device", "torch", "train_hash", "seed", "seconds")}
        rows.append({"file": str(p), **rec, "compute": m.get("compute"), "code": m.get("code"),
                     "imported": m.get("imported")})  # fmt: skip
    return sorted(rows, key=lambda r: (r["row"] is None, r["row"] or 0))


def score_records(scores: list[str | Path]) -> list[dict[str, Any]]:
    """Per score file: the compute knobs, kernels and code it was made with."""
    from .io import load_npz

    rows = []
    for p in scores:
        meta = json.loads(str(load_npz(p)["meta"]))
        knobs = {k: meta.get("scoring", {}).get(k) for k in ("memory_mb", "forward_batch")}
        rows.append(
            {
                "file": str(p),
                "row": meta.get("row"),
                "compute": {"device": meta.get("device"), "threads": meta.get("threads"), **knobs},
                "kernels": meta.get("kernels"),
                "code": meta.get("code"),
            }
        )
    return rows


def mixed_compute(records: list[dict[str, Any]]) -> dict[str, list]:
    """Knobs (and the kernels' identity) whose values differ between the records: results
    may then differ in their last bits (docs/reruns.md)."""
    values: dict[str, set] = {}
    for r in records:
        for k, v in (r.get("compute") or {}).items():
            values.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
        if r.get("kernels") is not None:
            values.setdefault("kernels", set()).add(json.dumps(r["kernels"], sort_keys=True))
    return {k: sorted(json.loads(v) if k != "kernels" else v[:60] for v in vs)
            for k, vs in sorted(values.items()) if len(vs) > 1}  # fmt: skip


def older_code(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Outputs made by other code than this checkout's (their code hash differs); rerun
    them with ``snakemake --forcerun <rule>`` or ``-R <rule>`` (docs/reruns.md)."""
    out = []
    for r in records:
        code = r.get("code") or {}
        script = code.get("script")
        now = code_hash(script) if script and (SCRIPTS_DIR / script).is_file() else None
        if now is None or code.get("code_hash") != now:
            out.append({"file": r["file"], "code_hash": code.get("code_hash"), "now": now})
    return out


def collect(
    config: dict[str, Any],
    *,
    commit: str,
    images: dict[str, str],
    checkpoints: list[str | Path] = (),
    scores: list[str | Path] = (),
) -> dict[str, Any]:
    """The provenance record of a run of `config` (see module docstring)."""
    models = model_records(list(checkpoints))
    score_recs = score_records(list(scores))
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
        "torch": torch_settings(),
        "packages": {k: md.version(k) for k in KEY_PACKAGES if _installed(k)},
        "all_packages": package_versions(),
        "models": models,
        "scores": score_recs,
        # compute knobs that differ between the models, or between the score files
        "mixed_compute": {
            "models": mixed_compute(models),
            "scores": mixed_compute(score_recs),
        },
        "older_code": older_code(models + score_recs),
    }


def _installed(name: str) -> bool:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        return False
    return True
