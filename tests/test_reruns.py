"""What reruns what (docs/reruns.md): the table there, checked row by row against dry runs of
a finished run; data and masks by content; corrupt inputs stop the run before any job."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _util import planned_jobs, snakemake_cmd, subprocess_env

from curvmia.io import load_npz, save_npz, sha256_file

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
RESULTS = Path("results") / "test"


def table_rows() -> dict[str, str]:
    """The rows of the 'What each kind of change reruns' table: change -> jobs cell."""
    text = (REPO / "docs" / "reruns.md").read_text()
    block = text.split("## What each kind of change reruns")[1].split("\n\n")[2]
    rows = {}
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1]
    return rows


def expected_jobs(cell: str) -> dict[str, int] | None:
    """'none' -> {}; 'rule N, rule, ...' -> {rule: N or 1}; prose cells -> None (own test)."""
    if cell == "none":
        return {}
    jobs = {}
    for item in cell.split(", "):
        m = re.fullmatch(r"(\w+)(?: (\d+))?", item)
        if not m:
            return None
        jobs[m.group(1)] = int(m.group(2) or 1)
    return jobs


@pytest.fixture(scope="module")
def finished(test_config_run, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("reruns") / "work"
    shutil.copytree(test_config_run, work, symlinks=True)
    return work


def run(work: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(work, config, "--cores", "1", *args)
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())


def edited_config(tmp_path: Path, change: str) -> Path:
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    key, value = change.split(": ", 1)
    section, name = key.split(".")
    cfg.setdefault(section, {})[name] = yaml.safe_load(value)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


CONFIG_ROWS = {k: v for k, v in table_rows().items() if re.fullmatch(r"\w+\.\w+: .+", k)}


@pytest.mark.parametrize("change", sorted(CONFIG_ROWS))
def test_config_change_reruns_what_the_table_says(finished, tmp_path, change):
    want = expected_jobs(CONFIG_ROWS[change])
    assert want is not None, f"docs/reruns.md: unparsable cell for {change}"
    proc = run(finished, edited_config(tmp_path, change), "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert planned_jobs(out) == want, out[-3000:]


def test_a_changed_mask_row_retrains_that_row_only(finished, tmp_path):
    rows = table_rows()
    want = expected_jobs(rows["one row of `masks.npz` changed (valid file)"])
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    masks = load_npz(work / RESULTS / "masks.npz")
    masks["masks"][3, :2] = ~masks["masks"][3, :2]  # two members of row 3 swapped out/in
    save_npz(work / RESULTS / "masks.npz", **masks)
    proc = run(work, TEST_CONFIG, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert planned_jobs(out) == want, out[-3000:]
    trained = re.findall(r"output: (results/test/models/model_\d+\.pt)", proc.stdout)
    assert trained == ["results/test/models/model_3.pt"], out[-3000:]


def test_truncated_masks_stop_before_any_job_and_keep_the_checkpoints(finished, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    path = work / RESULTS / "masks.npz"
    path.write_bytes(path.read_bytes()[:100])
    models = sorted((work / RESULTS / "models").glob("model_*.pt"))
    before = {p: p.stat().st_mtime_ns for p in models}
    proc = run(work, TEST_CONFIG)  # a real run, not a dry run
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{RESULTS}/masks.npz: unreadable (" in out and "nothing was run or deleted" in out
    assert {p: p.stat().st_mtime_ns for p in models} == before  # all 10 checkpoints kept
    # the fix the message names: delete it. A dry run lists every training (it cannot know
    # the new file's content); a real run makes the same masks and retrains and rescores no
    # main model (content ids), though it does rerun the sweep targets (docs/reliability.md)
    path.unlink()
    scores = sorted((work / RESULTS / "scores").glob("model_*.npz"))
    before |= {p: p.stat().st_mtime_ns for p in scores}
    proc = run(work, TEST_CONFIG)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    made, original = load_npz(path), load_npz(finished / RESULTS / "masks.npz")
    assert (made["masks"] == original["masks"]).all()


def test_byte_identical_reprepared_data_retrains_nothing(finished, tmp_path):
    """--forcerun prepare_data (and a deleted manifest) remade all 20 models before."""
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    outputs = [*(work / RESULTS).glob("models/*.pt"), *(work / RESULTS).glob("scores/*.npz")]
    outputs += [*(work / RESULTS).glob("sweeps/*/models/*.pt")]
    before = {p: p.stat().st_mtime_ns for p in outputs}
    (manifest,) = (work / "data").glob("digits-*/manifest.json")
    manifest.unlink()
    # a target that needs the masks, a target's score and so its model: the least work
    target = str(RESULTS / "curv_hist.png")
    proc = run(work, TEST_CONFIG, "--forcerun", "prepare_data", "--", target)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    ran = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", out, re.M))
    assert "prepare_data" in ran and not ran & {"train", "score", "train_sweep", "score_sweep"}
    assert manifest.exists()
    assert {p: p.stat().st_mtime_ns for p in outputs} == before


def test_prepared_data_path_depends_on_content_settings_only():
    from curvmia.data import prepared_dir_name

    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]
    name = prepared_dir_name(base)
    assert re.fullmatch(r"digits-[0-9a-f]{8}", name)
    for key, value in (("workers", 8), ("mirror", "/m"), ("archive", "/a.tgz"), ("path", "/p")):
        assert prepared_dir_name({**base, key: value}) == name, key
    for key, value in (("test_size", 1297), ("split_seed", 1), ("stats", "computed")):
        assert prepared_dir_name({**base, key: value}) != name, key
    # CIFAR's split is the official one: test_size does not move it
    cifar = {**base, "dataset": "cifar10"}
    assert prepared_dir_name({**cifar, "test_size": 5}) == prepared_dir_name(cifar)


def test_outputs_record_knobs_code_and_kernels(finished):
    import json

    import torch

    from curvmia.provenance import code_hash

    meta = torch.load(finished / RESULTS / "models" / "model_0.pt", weights_only=True)
    assert meta["compute"] == {
        "device": "cpu",
        "threads": 1,
        "loader_workers": 4,
        "resident_max_gib": 8,
        "checkpoint_minutes": 0,
    }
    assert meta["code"]["code_hash"] == code_hash("train.py")
    score = json.loads(str(load_npz(finished / RESULTS / "scores" / "model_0.npz")["meta"]))
    assert score["code"]["code_hash"] == code_hash("score.py")
    assert score["scoring"]["memory_mb"] == 256 and score["scoring"]["forward_batch"] == "auto"
    assert score["kernels"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert score["kernels"]["torch_blas"] and "cpu_flags" in score["kernels"]
    prov = json.loads((finished / RESULTS / "provenance.json").read_text())
    assert prov["older_code"] == [] and prov["mixed_compute"] == {"models": {}, "scores": {}}
    assert "compute" not in prov["config"]
    assert re.search(r"commit \S+, code hash [0-9a-f]{16} \(metrics.py\)",
                     (finished / RESULTS / "metrics.md").read_text())  # fmt: skip


def test_provenance_flags_mixed_knobs_and_older_code(tmp_path):
    from curvmia.provenance import code_hash, mixed_compute, older_code

    recs = [
        {"file": "a.pt", "compute": {"device": "cpu", "threads": 1},
         "code": {"script": "train.py", "code_hash": code_hash("train.py")}},
        {"file": "b.pt", "compute": {"device": "cpu", "threads": 4},
         "code": {"script": "train.py", "code_hash": "0" * 16}},
    ]  # fmt: skip
    assert mixed_compute(recs) == {"threads": [1, 4]}
    assert older_code(recs) == [
        {"file": "b.pt", "code_hash": "0" * 16, "now": recs[0]["code"]["code_hash"]}
    ]


def test_hutch_nprobes_zero_runs_to_the_theory(finished, tmp_path):
    """hutch_nprobes: 0 crashed the theory rule (log of all-NaN white-box features)."""
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    models = sorted((work / RESULTS / "models").glob("*.pt"))
    before = {p: p.stat().st_mtime_ns for p in models}
    config = edited_config(tmp_path, "scoring.hutch_nprobes: 0")
    proc = run(work, config, "--cores", "2", str(RESULTS / "theory" / "targets.md"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    md = (work / RESULTS / "theory" / "targets.md").read_text()
    assert "Not computed, skipped: curv_hutch, curv_hutch_sq (scoring.hutch_nprobes is 0)." in md
    assert "logcurv_zo" in md and "logcurv_hutch" not in md
    assert np.isnan(load_npz(work / RESULTS / "scores" / "model_4.npz")["curv_hutch"]).all()
    assert {p: p.stat().st_mtime_ns for p in models} == before  # scoring never retrains
    assert os.path.exists(work / RESULTS / "theory" / "targets.csv")


# ---------------------------------------------------------------- identity decides staleness
# (curvmia/staleness.py, docs/reruns.md "Identity decides staleness")


def lost_metadata(finished: Path, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    shutil.rmtree(work / ".snakemake")
    return work


def test_lost_metadata_and_nothing_changed_reruns_nothing(finished, tmp_path):
    proc = run(lost_metadata(finished, tmp_path), TEST_CONFIG, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert planned_jobs(out) == {} and "curvmia:" not in out, out[-3000:]


def test_lost_metadata_still_retrains_after_a_train_change(finished, tmp_path):
    """.snakemake/ deleted and train.epochs changed: "Nothing to be done" before."""
    work = lost_metadata(finished, tmp_path)
    proc = run(work, edited_config(tmp_path, "train.epochs: 3"), "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert planned_jobs(out) == expected_jobs(table_rows()["train.epochs: 3"]), out[-3000:]
    assert f"{RESULTS}/models/model_7.pt: stale (train_hash: stored '" in out


def damaged_plan(finished: Path, tmp_path: Path, path: str, damage: str) -> str:
    """A dry run's output on a copy of the finished run with ``path`` deleted, truncated or
    (a score file) replaced by shadow 0's."""
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    target = work / RESULTS / path
    if damage == "delete":
        target.unlink()
    elif damage == "swap":  # a shadow's score file over a target's: was attacked silently
        shutil.copy(target.with_name("model_0.npz"), target)
    else:
        target.write_bytes(target.read_bytes()[:1000])
    proc = run(work, TEST_CONFIG, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.parametrize(
    "path, damage, producer",
    [
        ("models/model_3.pt", "delete", "train"),
        ("models/model_3.pt", "truncate", "train"),
        ("scores/model_5.npz", "delete", "score"),
        ("scores/model_5.npz", "truncate", "score"),
        ("scores/model_8.npz", "swap", "score"),
        ("attacks/yeom.npz", "delete", "attack"),
        ("attacks/yeom.npz", "truncate", "attack"),
        ("pseudo/yeom.npz", "delete", "attack"),
    ],
)
def test_deleted_or_damaged_intermediate_is_planned(finished, tmp_path, path, damage, producer):
    """Deleting one gave "Nothing to be done"; truncating a score file failed every attack."""
    out = damaged_plan(finished, tmp_path, path, damage)
    jobs = planned_jobs(out)
    if producer == "attack":  # that attack alone, then what reads it
        assert jobs["attack"] == 1 and jobs["metrics"] == 1, jobs
        assert "score" not in jobs and "train" not in jobs, jobs
    else:
        assert jobs[producer] == 1 and jobs["attack"] == 5 and jobs["metrics"] == 1, jobs
        assert (jobs.get("score") == 1) and (jobs.get("train", 0) == (producer == "train")), jobs
    if damage == "truncate":
        assert f"{RESULTS}/{path}: damaged (not a readable" in out
    if damage == "swap":
        assert f"{RESULTS}/{path}: stale (row: stored 0, expected 8)" in out


@pytest.mark.parametrize(
    "path, damage, producer",
    [
        ("sweeps/dp/models/eps8.0_seed1.pt", "truncate", "train_sweep"),
        ("sweeps/size/scores/m50_seed0.npz", "truncate", "score_sweep"),
        ("sweeps/size/scores/m50_seed0.npz", "delete", "score_sweep"),
    ],
)
def test_a_damaged_sweep_model_or_score_file_is_planned(finished, tmp_path, path, damage, producer):
    """Sweep intermediates are checked at parse like the main experiment's."""
    out = damaged_plan(finished, tmp_path, path, damage)
    jobs = planned_jobs(out)
    assert jobs[producer] == 1 and jobs["sweep_metrics"] == 1 and jobs["theory_sweep"] == 1, jobs
    assert jobs.get("score_sweep") == 1 and "attack" not in jobs and "train" not in jobs, jobs
    if damage == "truncate":
        assert f"{RESULTS}/{path}: damaged (not a readable" in out, out[-3000:]


def test_a_deleted_score_file_is_rebuilt_by_a_plain_rerun(finished, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    path = work / RESULTS / "scores" / "model_5.npz"
    before = load_npz(path)
    path.unlink()
    proc = run(work, TEST_CONFIG)  # a real run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    after = load_npz(path)
    assert before.keys() == after.keys()
    for k in before:
        if k != "meta":
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    metrics = (work / RESULTS / "metrics.csv").read_text()
    assert metrics == (finished / RESULTS / "metrics.csv").read_text()
    proc = run(work, TEST_CONFIG, "-n")
    assert planned_jobs(proc.stdout + proc.stderr) == {}


def test_wrong_imported_mean_fails_at_parse_when_the_data_exists(finished, tmp_path):
    """The contract was checked by the import job only, after Snakemake had deleted the
    row's trained checkpoint."""
    from test_imported import ARCH, contract

    model = tmp_path / "model.pt"
    torch.save(small_model(ARCH).state_dict(), model)
    masks = load_npz(finished / RESULTS / "masks.npz")["masks"]
    np.save(tmp_path / "members.npy", masks)
    e = {"path": str(model), "row": 4, "role": "target", "sha256": sha256_file(model),
         "format": "state_dict", **ARCH,
         "members": {"source": "matrix", "path": str(tmp_path / "members.npy"),
                     "sha256": sha256_file(tmp_path / "members.npy"), "index": 4},
         "input": contract([0.3], [0.4])}  # fmt: skip
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["imported"] = {"models": [e]}
    config = tmp_path / "imported.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    checkpoint = work / RESULTS / "models" / "model_4.pt"
    stamp = checkpoint.stat().st_mtime_ns
    proc = run(work, config)  # a real run
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Invalid config: imported.models[0].input.mean: " in out, out[-3000:]
    assert "Job stats" not in out and checkpoint.stat().st_mtime_ns == stamp


def small_model(arch: dict):
    from curvmia.models import build_model

    torch.manual_seed(0)
    return build_model(arch["arch"], 10, 1, arch["model_kwargs"]).eval()


def test_a_truncated_checkpoint_is_moved_aside_and_retrained_bit_identical(finished, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    path = work / RESULTS / "models" / "model_3.pt"
    before = torch.load(path, weights_only=True)["state_dict"]
    path.write_bytes(path.read_bytes()[:1000])
    proc = run(work, TEST_CONFIG)  # a real run
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"curvmia: moved {RESULTS}/models/model_3.pt to {RESULTS}/models/model_3.pt.stale" in out
    after = torch.load(path, weights_only=True)["state_dict"]
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    proc = run(work, TEST_CONFIG, "-n")  # repaired for good: no marker left among the inputs
    assert planned_jobs(proc.stdout + proc.stderr) == {}, (proc.stdout + proc.stderr)[-3000:]
