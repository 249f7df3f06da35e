"""The curvature benchmark runs end to end on a tiny setting and prints every row it promises
(its numbers are timings: nothing here asserts on them beyond their form)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
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
        "--scan-rounds",
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
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [1, 6], out
    assert all(float(v) > 0 for r in rows for v in r[1:]), out
    # the scan covers both layouts, and the measured bar is the scan's best (layout, batch)
    scan = {}
    for layout in ("contiguous", "channels_last"):
        line = re.search(rf"scan: plain forward img/s by batch, {layout}: (.*)$", out, re.M)
        pairs = dict(kv.split(": ") for kv in line.group(1).split(", "))
        want = {4 << k for k in range(cap.bit_length()) if 4 << k <= cap} | {cap, 1, 6}
        assert sorted(int(b) for b in pairs) == sorted(want), out  # 4·2^k to the cap, b's
        scan.update({(layout, int(b)): float(v) for b, v in pairs.items()})
    best = re.search(r"plain forward best: [\d.]+ img/s at batch (\d+), (\w+) \(scan: (\d+)\)", out)
    assert scan[(best.group(2), int(best.group(1)))] == float(best.group(3)) == max(scan.values())
    refs = re.search(r"scan: reference queries/s by batch: 1: ([\d.]+), 6: ([\d.]+)", out)
    ref_b = re.search(r"reference loop best: [\d.]+ queries/s at batch (\d+)", out).group(1)
    assert float(refs.group(1 if ref_b == "1" else 2)) == max(map(float, refs.groups())), out
    assert re.search(r"engine's perturbed forwards at each forward batch.*4: [\d.]+", out), out
    # the engine runs the default model with its six Conv2d-BatchNorm2d pairs folded
    assert re.search(r"scoring model: 6 Conv2d-BatchNorm2d pairs folded; plain forward", out)
    for k in (2, 10):
        assert re.search(
            rf"K={k} probes on a batch of 4: [\d.]+ s = [\d.]+ forward-equivalents", out
        ), out


def test_gpu_check_cpu_smoke_runs_every_step():
    """benchmarks/gpu_check.sh at tiny size on the CPU: the GPU check cannot rot unseen."""
    env = {**subprocess_env(), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rates = [float(x) for x in re.findall(r"model fwd\+bwd\+step:\s+([\d.]+) img/s", out)]
    assert len(rates) == 2 and min(rates) > 0, out  # eager fp32, then bf16
    m = re.search(r"ZO efficiency min ([\d.]+); speedup over the best reference min ([\d.]+)", out)
    assert m and 0 < float(m.group(1)) < 5 and float(m.group(2)) > 0, out
    hvp = re.search(r"one Hessian-vector product ([\d.]+)", out)
    assert hvp and float(hvp.group(1)) > 0, out
    assert "identical: True" in out and "equals unsharded: True" in out, out
    # on the CPU TF32 does not exist: switching it on changes nothing
    assert "ZO curvature max relative change 0.00e+00" in out, out
    assert out.rstrip().endswith("gpu_check: all steps passed (cpu)"), out[-2000:]


def test_attack_benchmark_refuses_zero_bootstrap_replicates():
    """`--boot 0` failed deep in the metrics ("need at least one array to concatenate")."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "attacks.py"), "--boot", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--boot: needs at least 1 bootstrap replicate, got 0" in proc.stderr


@pytest.mark.parametrize(
    "mode, kind",
    [([], "device-resident"), (["--stream", "--workers", "1", "--rrc"], r"streamed \(1 workers")],
    ids=["resident", "streamed"],
)
def test_train_benchmark_runs_curvmias_pipeline(mode, kind):
    """benchmarks/train.py on curvmia.train's batch sources at tiny size: both pipelines run
    (the streamed one through a DataLoader worker over a memory-mapped file) and the three
    rates print."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "train.py"), "--shape", "1", "8", "8"]
    cmd += ["--n", "32", "--arch", "cifar_resnet10", "--batch", "4", "--steps", "2", *mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(rf"^pipeline {kind}.*: +[\d.]+ img/s$", out, re.M), out
    assert re.search(r"^model fwd\+bwd\+step: +[\d.]+ img/s$", out, re.M), out
    assert re.search(r"^pipeline / model = [\d.]+ \(keeps up if >= 0.90\)$", out, re.M), out


def test_attack_benchmark_calibration_stage_prints_both_times_and_the_ratio():
    """benchmarks/attacks.py --calibration at tiny size: every cifar10.yaml entry timed as an
    attack and as pseudo-targets, then (a), (b) and their ratio."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "attacks.py"), "--calibration"]
    cmd += ["--samples", "300", "--shadows", "6", "--test-samples", "50", "--boot", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^TOTAL [\d.]+ s \(limit 60 s", out, re.M), out  # the first stage's end
    rows = re.findall(
        r"^  (\S+) +attack +[\d.]+ s, pseudo-targets +[\d.]+ s \+ thresholds", out, re.M
    )
    entries = yaml.safe_load((REPO / "config" / "cifar10.yaml").read_text())["attacks"]
    assert rows == [e.get("label", e["name"]) for e in entries], out
    n = len(entries)
    a = re.search(
        rf"^calibration: \(a\) attack step, {n} entries x 3 targets: [\d.]+ s$", out, re.M
    )
    b = re.search(
        rf"^calibration: \(b\) {n} entries x 6 pseudo-targets: [\d.]+ s \(scor", out, re.M
    )
    assert a and b and "thresholds at FPR 0.1, 0.01, 0.001, 0.0001 and balanced accuracy" in out
    assert re.search(r"^calibration: ratio \(b\)/\(a\) [\d.]+ \(target <= 3\)$", out, re.M), out
