"""The curvature benchmark runs end to end on a tiny setting and prints every row it promises
(its numbers are timings: nothing here asserts on them beyond their form)."""

import re
import subprocess
import sys
from pathlib import Path

from _util import subprocess_env

REPO = Path(__file__).resolve().parents[1]


def test_curvature_benchmark_prints_its_table():
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "curvature.py"),
        "--batch-sizes",
        "1,6",
        "--rounds",
        "1",
        "--min-samples",
        "4",
        "--niter",
        "2",
        "--hutch-batch",
        "4",
        "--memory-mb",
        "0.5",
        "--per-batch",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    cap, choice = map(
        int, re.search(r"memory cap \(0.5 MiB\) (\d+), engine's choice (\d+)", out).groups()
    )
    assert choice % 4 == 0 and 4 <= choice <= cap
    rows = re.findall(
        r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M
    )
    assert [int(r[0]) for r in rows] == [1, 6], out
    assert all(float(v) > 0 for r in rows for v in r[1:]), out
    assert re.search(r"engine's perturbed forwards at each forward batch.*4: [\d.]+", out), out
    assert re.search(r"K=2 probes on a batch of 4: [\d.]+ s = [\d.]+ forward-equivalents", out), out
