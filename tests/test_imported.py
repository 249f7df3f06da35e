"""Imported models (docs/audit-your-model.md).

- A finished run's models, exported (state dicts and safetensors, membership matrix) and
  imported under a new experiment name, give the original's scores and metrics exactly,
  with no training job.
- A mixed run: target 4 imported with its members, target 9 imported with unknown members
  (a user's own model), shadows trained with the config's recipe: target 4's metrics equal
  the original's, target 9 has none and the report says why, and its examples are ranked by
  exposure over the population.
- Every bad manifest has its own message naming the key and file (the config check,
  in-process); two of them stop a dry run before any job (the check's wiring).
- Unit checks: a trusted TorchScript file survives the checkpoint round trip; the input
  contract accepts an equivalent [0, 255] declaration and names a wrong field.
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _util import planned_jobs, snakemake_cmd, subprocess_env

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
ARCH = {"arch": "cifar_resnet", "model_kwargs": {"width": 8, "layers": [1, 1]}}
SHADOWS, TARGETS = [0, 1, 2, 3, 5, 6, 7, 8], [4, 9]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contract(mean: list[float], std: list[float], **change) -> dict:
    """Digits' input contract (8 px, 1 channel, 10 classes, no resize) with ``mean``/``std``."""
    base = {"range": [0, 1], "mean": mean, "std": std, "resize": None, "crop": "none",
            "image_size": 8, "num_classes": 10, "in_chans": 1}  # fmt: skip
    return {**base, **change}


def write_config(tmp: Path, experiment: str, entries: list[dict]) -> Path:
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["experiment"] = experiment
    cfg["imported"] = {"models": entries}
    path = tmp / f"{experiment}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(work: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(work, config, "--cores", "2", *args)
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())


def targets(exp: str) -> list[str]:
    return [f"results/{exp}/{f}" for f in ("metrics.csv", "per_example.csv.gz", "models.csv")]


def export_run(work: Path, out: Path) -> dict[int, dict]:
    """Every model of results/test as a plain file (even rows torch state dicts, odd rows
    safetensors) and the membership matrix; the import entry of each row."""
    from safetensors.torch import save_file

    out.mkdir()
    masks = np.load(work / "results/test/masks.npz")["masks"]
    np.save(out / "membership.npy", masks)
    manifest = json.loads(next((work / "data").glob("digits*/manifest.json")).read_text())
    entries = {}
    for row in range(len(masks)):
        ckpt = torch.load(work / f"results/test/models/model_{row}.pt", weights_only=True)
        if row % 2 == 0:
            path, fmt = out / f"model_{row}.pt", "state_dict"
            torch.save(ckpt["state_dict"], path)
        else:
            path, fmt = out / f"model_{row}.safetensors", "safetensors"
            save_file(ckpt["state_dict"], str(path))
        entries[row] = {
            "path": str(path), "row": row, "sha256": sha(path), "format": fmt, **ARCH,
            "role": "target" if row in TARGETS else "shadow",
            "members": {"source": "matrix", "path": str(out / "membership.npy"),
                        "sha256": sha(out / "membership.npy"), "index": row},
            "input": contract(manifest["mean"], manifest["std"]),
        }  # fmt: skip
    return entries


def score_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}


@pytest.fixture(scope="module")
def exported(test_config_run, tmp_path_factory):
    work = tmp_path_factory.mktemp("imported") / "work"
    shutil.copytree(test_config_run, work, symlinks=True)
    return work, export_run(work, work.parent / "export")


def test_reimported_run_reproduces_the_original(exported):
    work, entries = exported
    config = write_config(work.parent, "reimport", list(entries.values()))
    dry = snakemake(work, config, "-n", *targets("reimport"))
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout + dry.stderr)
    assert jobs.get("import_model") == 10 and "train" not in jobs, jobs
    proc = snakemake(work, config, *targets("reimport"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    orig, new = work / "results/test", work / "results/reimport"
    for row in range(10):
        a = score_arrays(orig / f"scores/model_{row}.npz")
        b = score_arrays(new / f"scores/model_{row}.npz")
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"row {row} {k}")
    pd.testing.assert_frame_equal(
        pd.read_csv(orig / "metrics.csv"), pd.read_csv(new / "metrics.csv")
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(orig / "per_example.csv.gz"), pd.read_csv(new / "per_example.csv.gz")
    )
    mo, mn = pd.read_csv(orig / "models.csv"), pd.read_csv(new / "models.csv")
    assert (mn.source == "imported").all() and (mo.source == "trained").all()
    # test accuracy measured again on the held-out split: the trained model's own
    np.testing.assert_array_equal(mo.test_acc, mn.test_acc)
    np.testing.assert_array_equal(mo.n_train, mn.n_train)


def test_mixed_run_with_a_model_of_unknown_members(exported):
    work, entries = exported
    own = {**entries[9], "members": None}  # a user's own model: training index unknown
    config = write_config(work.parent, "mixed", [entries[4], own])
    dry = snakemake(work, config, "-n", *targets("mixed"))
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout + dry.stderr)
    assert jobs.get("import_model") == 2 and jobs.get("train") == 8, jobs
    proc = snakemake(work, config, *targets("mixed"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    orig, new = work / "results/test", work / "results/mixed"
    for row in SHADOWS:  # the config's recipe on the same population: the same shadows
        a = score_arrays(orig / f"scores/model_{row}.npz")
        b = score_arrays(new / f"scores/model_{row}.npz")
        np.testing.assert_array_equal(a["curv_zo"], b["curv_zo"], err_msg=f"row {row}")
    mo, mn = pd.read_csv(orig / "metrics.csv"), pd.read_csv(new / "metrics.csv")
    assert set(mn.target) == {"4", "mean", "std"}
    pd.testing.assert_frame_equal(
        mo[mo.target == "4"].reset_index(drop=True), mn[mn.target == "4"].reset_index(drop=True)
    )
    md = (new / "metrics.md").read_text()
    assert "target(s) [9] are unknown" in md and "no AUROC" in md
    # target 9: the original's scores, exposure = fraction of the population outscored
    po, pn = pd.read_csv(orig / "per_example.csv.gz"), pd.read_csv(new / "per_example.csv.gz")
    for attack in ("curv_nll", "lira_online"):
        s_orig = po[(po.target == 9) & (po.attack == attack)].sort_values("sample")
        t9 = pn[(pn.target == 9) & (pn.attack == attack)].sort_values("sample")
        np.testing.assert_array_equal(s_orig.score.to_numpy(), t9.score.to_numpy())
        assert not t9.member_known.any() and not t9.is_member.any()
        s = np.nan_to_num(t9.score.to_numpy(), nan=-np.inf)
        want = np.array([((s < v).sum() + 0.5 * (s == v).sum()) / len(s) for v in s])
        np.testing.assert_allclose(t9.exposure.to_numpy(), want, rtol=0, atol=1e-12)
    models = pd.read_csv(new / "models.csv").set_index("row")
    assert models.loc[9, "source"] == "imported" and np.isnan(models.loc[9, "train_acc"])
    assert models.loc[0, "source"] == "trained"


# ---------------------------------------------------------------- bad manifests (dry runs)


@pytest.fixture(scope="module")
def small_files(tmp_path_factory) -> dict[str, Path]:
    """A small digits model in every accepted and refused form, and membership arrays."""
    from curvmia.models import build_model

    d = tmp_path_factory.mktemp("small")
    torch.manual_seed(0)
    model = build_model("cifar_resnet", 10, 1, ARCH["model_kwargs"]).eval()
    torch.save(model.state_dict(), d / "model.pt")
    torch.save(model, d / "full_model.pt")  # a pickled module: refused
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), d / "model.ts")
    rng = np.random.default_rng(0)
    np.save(d / "members.npy", rng.random((10, 500)) < 0.5)
    np.save(d / "members_499.npy", rng.random((10, 499)) < 0.5)
    np.save(d / "members_obj.npy", np.array([[True] * 500] * 10, dtype=object), allow_pickle=True)
    return {p.name: p for p in d.iterdir()}


def entry(files: dict[str, Path], **change) -> dict:
    e = {"path": str(files["model.pt"]), "row": 4, "role": "target",
         "sha256": sha(files["model.pt"]), "format": "state_dict", **ARCH,
         "members": {"source": "matrix", "path": str(files["members.npy"]),
                     "sha256": sha(files["members.npy"]), "index": 4},
         "input": contract([0.3], [0.4])}  # fmt: skip
    return {**e, **change}


def members(files, name):
    return {"source": "matrix", "path": str(files[name]), "sha256": sha(files[name]), "index": 4}


BAD = {
    "missing file": (
        lambda f: [entry(f, path=str(f["model.pt"]) + ".gone")],
        "imported.models[0].path: {d}/model.pt.gone: no such file",
    ),
    "wrong sha256": (
        lambda f: [entry(f, sha256="0" * 64)],
        "imported.models[0].sha256: {d}/model.pt has sha256",
    ),
    "duplicate row": (
        lambda f: [entry(f), entry(f)],
        "imported.models[1].row: row 4 is imported twice (also entry 0)",
    ),
    "class count": (
        lambda f: [entry(f, input=contract([0.3], [0.4], num_classes=100))],
        "imported.models[0].input.num_classes: {d}/model.pt declares 100, the dataset gives 10",
    ),
    "membership shape": (
        lambda f: [entry(f, members=members(f, "members_499.npy"))],
        "imported.models[0].members.path: {d}/members_499.npy has shape (10, 499); the "
        "population has 500 examples",
    ),
    "object membership": (
        lambda f: [entry(f, members=members(f, "members_obj.npy"))],
        "imported.models[0].members.path: {d}/members_obj.npy holds an object (pickled) array",
    ),
    "pickled model": (
        lambda f: [entry(f, path=str(f["full_model.pt"]), sha256=sha(f["full_model.pt"]))],
        "imported.models[0].format: {d}/full_model.pt is a pickled object, not plain weights",
    ),
    "untrusted torchscript": (
        lambda f: [
            entry(f, path=str(f["model.ts"]), sha256=sha(f["model.ts"]), format="torchscript")
        ],  # fmt: skip
        "imported.models[0].trust: {d}/model.ts is TorchScript, a program rather than weights",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_manifest_has_its_own_message(small_files, case):
    """The check the workflow runs on the config before any job (in-process: fast)."""
    from curvmia.imported import check_section

    make, message = BAD[case]
    with pytest.raises(ValueError) as err:
        check_section(make(small_files), shadows=SHADOWS, targets=TARGETS,
                      data_cfg={"dataset": "digits", "test_size": 1297})  # fmt: skip
    assert message.format(d=small_files["model.pt"].parent) in str(err.value)


@pytest.mark.parametrize("case", ["wrong sha256", "pickled model"])
def test_bad_manifest_stops_before_any_job(small_files, tmp_path, case):
    """The same check wired into the workflow: a dry run stops at parse time."""
    make, message = BAD[case]
    config = write_config(tmp_path, "bad", make(small_files))
    proc = snakemake(tmp_path / "work", config, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert message.format(d=small_files["model.pt"].parent) in out, out[-2000:]
    assert "Job stats" not in out


def test_good_manifest_imports_its_row_and_trains_the_rest(small_files, tmp_path):
    """The reference for the cases above: the same entry, well formed, plans one import."""
    config = write_config(tmp_path, "good", [entry(small_files)])
    proc = snakemake(tmp_path / "work", config, "-n", *targets("good"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert jobs.get("import_model") == 1 and jobs.get("train") == 9, jobs


# ---------------------------------------------------------------- units


def test_trusted_torchscript_round_trips_through_a_checkpoint(small_files, tmp_path):
    from curvmia.checkpoint import load_checkpoint, save_checkpoint, torchscript_bytes
    from curvmia.imported import load_model

    e = entry(small_files, path=str(small_files["model.ts"]), format="torchscript", trust=True)
    model = load_model(e, "imported.models[0]")
    meta = {"arch": "torchscript", "num_classes": 10, "in_chans": 1, "model_kwargs": {},
            "row": 4, "torchscript": torchscript_bytes(e["path"])}  # fmt: skip
    save_checkpoint(tmp_path / "m.pt", model, meta)
    back, _ = load_checkpoint(tmp_path / "m.pt", expect={"row": 4})
    ref = torch.load(small_files["model.pt"], weights_only=True)
    from curvmia.models import build_model

    plain = build_model("cifar_resnet", 10, 1, ARCH["model_kwargs"])
    plain.load_state_dict(ref)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(back(x), plain.eval()(x), rtol=0, atol=0)


def test_input_contract_accepts_equivalent_range_and_names_a_wrong_field():
    from curvmia.imported import check_contract

    have = {"num_classes": 10, "in_chans": 1, "image_size": 8, "resize": None, "crop": "none",
            "mean": [0.2], "std": [0.25]}  # fmt: skip
    check_contract(contract([0.2], [0.25]), have, "imported.models[0]", "m.pt")
    # the same normalisation written for pixels in [0, 255]
    check_contract(contract([51.0], [63.75], range=[0, 255]), have, "imported.models[0]", "m.pt")
    with pytest.raises(ValueError, match=r"imported.models\[0\].input.std: m.pt declares \[0.3\]"):
        check_contract(contract([0.2], [0.3]), have, "imported.models[0]", "m.pt")
    with pytest.raises(ValueError, match=r"models\[0\].input.image_size: m.pt declares 32"):
        check_contract(contract([0.2], [0.25], image_size=32), have, "imported.models[0]", "m.pt")
