"""Shared helpers for tests that start Snakemake or tools in a subprocess."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    """Environment in which the rules' `python` is the interpreter running the tests."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """Command line of a workflow run in `workdir` with `configfile` (no profile)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]
