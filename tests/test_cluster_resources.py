"""What each job requests from a cluster: the rules' own resources, from the experiment's config.

docs/cluster.md tabulates them for digits, cifar10 and imagenet; this test reads the same
numbers from dry runs of the shipped configs (repository root, every target) and compares.
The profiles must not set resources of their own: the cluster profile holds cluster settings.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _util import REPO, subprocess_env

DOC = REPO / "docs" / "cluster.md"
CONFIGS = {"digits": "config.yaml", "cifar10": "cifar10.yaml", "imagenet": "imagenet.yaml"}
TARGETS = ["all", "dp_sweep", "size_sweep"]
BEGIN, END = "<!-- resources:begin -->", "<!-- resources:end -->"


def requests(workdir: Path, name: str) -> dict[str, str]:
    """rule -> 'CPUs · mem MB · minutes · GPUs' of every job a dry run of config `name` plans."""
    extra = []
    if name == "imagenet":  # a fake ImageFolder tree passes the layout check before any job
        img = workdir / "ILSVRC2012" / "train" / "n01440764"
        img.mkdir(parents=True)
        (img / "a.JPEG").write_bytes(b"")
        overlay = workdir / "data_path.yaml"
        overlay.write_text(yaml.safe_dump({"data": {"path": str(img.parents[1])}}))
        extra = [str(overlay)]
    cmd = [sys.executable, "-m", "snakemake", *TARGETS, "-n", "--cores", "1024"]
    cmd += ["-d", str(workdir), "--configfile", str(REPO / "config" / CONFIGS[name]), *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    out: dict[str, str] = {}
    # (jobs of a group are listed indented under "Group job ...")
    for block in re.split(r"\n(?=\s*(?:local)?(?:rule|checkpoint) \w+:)", proc.stdout):
        m = re.match(r"\s*(?:local)?(?:rule|checkpoint) (\w+):", block)
        if not m or m.group(1) in TARGETS:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        res = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", block).group(1)))
        cell = (
            f"{threads.group(1) if threads else 1} · {res['mem_mb']} · {res['runtime']}"
            f" · {res.get('gpu', 0)}"
        )
        assert out.setdefault(m.group(1), cell) == cell, (name, m.group(1), cell, out[m.group(1)])
        # one slot per CPU step (profiles/default caps them); GPU steps have none
        assert ("cpu_steps" in res) == ("gpu" not in res), (name, m.group(1), res)
    return out


def resource_table(tmp_path: Path) -> str:
    """The markdown table of docs/cluster.md, from dry runs."""
    cols = {name: requests(tmp_path / name, name) for name in CONFIGS}
    rules = sorted(set().union(*cols.values()))
    lines = ["| rule | " + " | ".join(CONFIGS) + " |", "|---" * (len(CONFIGS) + 1) + "|"]
    for rule in rules:
        cells = [cols[name].get(rule, "—") for name in CONFIGS]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_docs_table_equals_what_dry_runs_request(tmp_path):
    table = resource_table(tmp_path)
    text = DOC.read_text()
    documented = text.split(BEGIN)[1].split(END)[0].strip()
    assert documented == table, f"docs/cluster.md is stale; the dry runs give:\n{table}"
    # the paper configs request a GPU for training and scoring, digits none
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    for rule in ("train", "train_sweep", "score_sweep"):
        digits, cifar10, imagenet = rows[rule].strip("| ").split(" | ")[1:]
        assert digits.endswith("· 0") and cifar10.endswith("· 1") and imagenet.endswith("· 1")
    # threads drive --cpus-per-task: ImageNet's 16 threads, its 16 decoding workers
    assert rows["train"].split(" | ")[3].startswith("16 ·")
    assert rows["prepare_data"].split(" | ")[3].startswith("16 ·")


@pytest.mark.parametrize("profile", ["slurm", "local", "default"])
def test_profiles_request_no_resources_of_their_own(profile):
    cfg = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    assert "set-resources" not in cfg and "set-threads" not in cfg, profile
    assert not set(cfg.get("default-resources") or {}) - {"slurm_account", "slurm_partition"}
    # no bind of a path that may not exist on the user's cluster
    assert "--bind" not in str(cfg.get("apptainer-args", "")), cfg.get("apptainer-args")


def test_no_profile_link_shadows_a_users_own_profile():
    """`--profile slurm` must find the user's ~/.config/snakemake/slurm from the repository root."""
    for name in ("slurm", "local"):
        assert not (REPO / name).exists(), f"{name} in the repository root shadows a user profile"


STUBS = {
    "sbatch": 'echo "$@" >> "$STUB_LOG"; echo 4242',
    "sacctmgr": "echo curvmia",
    **{name: "exit 0" for name in ("sinfo", "scontrol", "sacct", "squeue", "sshare")},
}


def test_post_group_requests_four_steps_side_by_side_not_the_sum(tmp_path):
    """The `post` group job as the bundled profile submits it (sbatch stubbed out)."""
    import os
    import time

    work, config = tmp_path / "work", str(REPO / "tests" / "config" / "test.yaml")
    base = [sys.executable, "-m", "snakemake", "-d", str(work), "--configfile", config]

    # the data and masks for real (checkpoints: the plan reads their content), then every
    # other output before the `post` group in place (empty files), all with one mtime
    def planned_outputs(kind: str) -> dict[str, list[str]]:
        plan = subprocess.run([*base, "-n"], capture_output=True, text=True, env=subprocess_env())
        assert plan.returncode == 0, plan.stderr[-3000:]
        out: dict[str, list[str]] = {}
        for block in re.split(r"\n(?=\s*(?:local)?(?:rule|checkpoint) \w+:)", plan.stdout):
            m = re.match(rf"\s*({kind}) (\w+):\n(?:.*\n)*?\s+output: (.*)", block)
            if m:
                out.setdefault(m.group(2), []).extend(m.group(3).split(", "))
        return out

    checkpoints = [f for fs in planned_outputs("checkpoint").values() for f in fs]
    made = [*base, "--cores", "1", *checkpoints]
    done = subprocess.run(made, capture_output=True, text=True, env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    groups = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())["groups"]
    for rule, files in planned_outputs("rule").items():
        if groups.get(rule) != "post":
            for f in files:
                (work / f).parent.mkdir(parents=True, exist_ok=True)
                (work / f).touch()
    for f in work.rglob("*"):
        if f.is_file() and ".snakemake" not in f.parts:
            os.utime(f, (1e9, 1e9))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in STUBS.items():
        (bindir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bindir / name).chmod(0o755)
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    for key in ("software-deployment-method", "apptainer-args"):  # no Apptainer here
        profile.pop(key)
    profile["default-resources"] = {"slurm_account": "curvmia"}
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    log = tmp_path / "sbatch.log"
    env = {**subprocess_env(), "STUB_LOG": str(log)}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    cmd = [*base, "--profile", str(tmp_path / "profile")]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    # (the preflight's `sbatch --test-only` calls come first: curvmia/cluster.py)
    def submitted() -> list[str]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [c for c in lines if not c.startswith("--test-only")]

    try:
        for _ in range(240):
            if submitted() or proc.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        out = proc.communicate()[0]
    assert submitted(), out[-3000:]
    call = submitted()[0]
    assert "--comment rule_post_" in call, call
    # what each step of the group declares (the main process lists them)
    steps = re.findall(r"resources: .*mem_mb=(\d+),.*runtime=(\d+), cpu_steps=1", out)
    assert len(steps) >= 10 and len(set(steps)) == 1, steps  # 5 attacks, metrics, sweeps...
    mem, runtime = map(int, steps[0])
    # 4 steps side by side (profiles/default: cpu_steps=4), not the sum of all of them
    assert f" --mem {4 * mem} " in call and "--cpus-per-task=4 " in call, call
    # wall time: the layers' run times added up (at least n/4 layers, fewer than n)
    n = len(re.search(r"--target-jobs ((?:'[^']*' )+)", call).group(1).split())
    t = int(re.search(r" -t (\d+) ", call).group(1))
    assert n == len(steps) and t % runtime == 0 and -(-n // 4) <= t // runtime < n, (n, t)
