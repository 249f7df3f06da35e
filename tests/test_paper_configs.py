"""The paper configs: complete (nothing falls back to the digits defaults), valid, and
planned as the paper's experiments; the ImageNet config without its data stops before any
job with the layout error."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _util import planned_jobs, subprocess_env

REPO = Path(__file__).resolve().parents[1]
PAPER = ["cifar10", "cifar100", "imagenet"]
FREE_FORM = {"model_kwargs", "size_sweep.train"}  # open dicts: their keys are the user's


def key_paths(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        path = f"{prefix}{k}"
        out.add(path)
        if isinstance(v, dict) and k not in FREE_FORM and path not in FREE_FORM:
            out |= key_paths(v, path + ".")
    return out


def dry_run(tmp_path: Path, *configfiles: Path, target: str | None = None, extra=()):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        *([target] if target else []),
        "-n",
        "--cores",
        "1",
        *extra,
        "--configfile",  # last: it takes every following argument
        *map(str, configfiles),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_is_complete_and_valid(name):
    import jsonschema

    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    missing = key_paths(default) - key_paths(cfg)
    assert not missing, f"config/{name}.yaml leaves {sorted(missing)} to the digits defaults"
    extra = key_paths(cfg) - key_paths(default)
    assert not extra, f"config/{name}.yaml has keys the default lacks: {sorted(extra)}"
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    jsonschema.validate(cfg, schema)
    assert cfg["experiment"] == name
    assert cfg["data"]["dataset"] == {"imagenet": "imagefolder"}.get(name, name)


def test_paper_layouts_and_recipes():
    c10, c100, inet = (yaml.safe_load((REPO / "config" / f"{n}.yaml").read_text()) for n in PAPER)
    for c, bs in ((c10, 256), (c100, 512)):
        m, t = c["masks"], c["train"]
        assert (m["n_random"], m["pkeep"], m["complements"]) == (128, 0.5, False)
        assert m["shadows"] == list(range(64)) and m["targets"] == [64, 65, 66]
        assert (t["arch"], t["epochs"], t["batch_size"], t["lr"]) == (
            "cifar_resnet18",
            300,
            bs,
            0.1,
        )
        assert (t["weight_decay"], t["milestones"], t["pad"], t["flip"]) == (
            1e-4,
            [0.6, 0.8],
            4,
            True,
        )
        dp = c["dp_sweep"]["train"]
        assert (dp["optimizer"], dp["epochs"], dp["batch_size"], dp["lr"]) == (
            "rmsprop",
            20,
            128,
            1e-3,
        )
        assert sorted({round(f * 20) for f in dp["milestones"]}) == [12, 16]
        assert len(c["dp_sweep"]["epsilons"]) == 13 and len(c["size_sweep"]["sizes"]) == 13
    m, t = inet["masks"], inet["train"]
    assert (m["n_random"], m["pkeep"], m["complements"]) == (55, 0.7, False)
    assert m["shadows"] == list(range(52)) and m["targets"] == [52, 53, 54]
    assert sorted({round(f * 90) for f in t["milestones"]}) == [30, 60, 80]
    assert (t["arch"], t["random_resized_crop"], inet["data"]["image_size"]) == (
        "resnet50",
        True,
        224,
    )


def test_cifar10_plans_67_trainings_and_67_scorings_without_data(tmp_path):
    rc, out = dry_run(tmp_path, REPO / "config" / "cifar10.yaml")
    assert rc == 0, out[-3000:]
    jobs = planned_jobs(out)
    assert jobs["train"] == 67 and jobs["score"] == 67
    assert jobs["download_data"] == 1 and jobs["prepare_data"] == 1
    # compute nodes are often offline: the download is a local rule
    block = (REPO / "rules" / "data.smk").read_text().split("rule download_data:")[1]
    assert "localrule: True" in block.split("\n\n")[0]
    assert not any(k in jobs for k in ("train_sweep", "score_sweep"))  # sweeps are separate
    assert not (tmp_path / "data").exists()


def test_fast_preset_overlays_the_recipe(tmp_path):
    rc, out = dry_run(
        tmp_path,
        REPO / "config" / "cifar100.yaml",
        REPO / "config" / "presets" / "fast.yaml",
        extra=["-p", "--config", "experiment=cifar100-fast"],
    )
    assert rc == 0, out[-3000:]
    assert planned_jobs(out)["train"] == 67
    # a fresh dry run shows the training jobs, whose commands wait for the prepared data (a
    # checkpoint, docs/reruns.md); the provenance command carries the effective config
    words = shlex.split(next(line for line in out.splitlines() if "provenance.py" in line))
    t = json.loads(words[words.index("--info") + 1])["config"]["train"]
    assert (t["epochs"], t["amp"], t["batch_size"]) == (30, "bf16", 512)
    assert "output: results/cifar100-fast/models/model_64.pt" in out


def test_imagenet_without_data_fails_before_any_job(tmp_path):
    rc, out = dry_run(tmp_path, REPO / "config" / "imagenet.yaml")
    assert rc != 0
    assert "data.path" in out and "train/<class>/<image>" in out
    assert "Job stats" not in out
