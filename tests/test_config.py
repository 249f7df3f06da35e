"""A bad config fails before any job runs, with a message that names the key."""

import subprocess
import sys
from pathlib import Path

import pytest
from _util import subprocess_env

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

BAD = {
    "unknown key": ("train:\n  epochz: 3\n", "epochz"),
    "unknown top-level key": ("foo: 1\n", "foo"),
    "wrong type": ("train:\n  epochs: ten\n", "epochs"),
    "niter 0": ("scoring:\n  niter: 0\n", "niter"),
    "unknown dataset": ("data:\n  dataset: mnist\n", "dataset"),
    "md5 not lowercase hex": ("data:\n  md5: C58F30108F718F92721AF3B95E74349A\n", "md5"),
    "unknown architecture": ("train:\n  arch: resnet_nonexistent_9\n", "train.arch"),
    "unsound layout": (
        "masks:\n  shadows: [0, 1, 2, 3, 4, 5, 6]\n  targets: [10]\n",  # 10 = complement of 0
        "masks.targets",
    ),
    "attack parameter": (
        "attacks:\n  - {name: yeom, unit_variance: true}\n",
        "attacks[0].unit_variance",
    ),
    # the paper variant of a loss baseline reads float32 fields that only variant paper scores
    "float32 fields": (
        "scoring:\n  variant: clean\nattacks:\n  - {name: curv_nll}\n  - {name: song}\n",
        "attacks[1].variant",
    ),
    # every model is built on the meta device before any job (a misspelt keyword or an
    # impossible shape was ignored, or killed the train job)
    "misspelt model keyword": ("train:\n  model_kwargs: {widht: 64}\n", "train.model_kwargs"),
    "negative width": ("train:\n  model_kwargs: {width: -8}\n", "train.model_kwargs"),
    "DP model keyword": (
        "dp_sweep:\n  train: {arch: cifar_resnet, model_kwargs: {width: 0}, optimizer: rmsprop,"
        " epochs: 1, batch_size: 8, lr: 0.01, momentum: 0.0, milestones: [0.5], gamma: 0.1,"
        " max_grad_norm: 1.0, delta: 1.0e-5, seed: 0}\n",
        "dp_sweep.train.model_kwargs",
    ),
    # a misspelt override of the size sweep's recipe was silently ignored
    "size-sweep override": ("size_sweep:\n  train: {epochz: 1}\n", "size_sweep.train: unknown"),
    # the shadow budget's K beyond the shadows' 8 complement pairs
    "budget K": ("metrics:\n  budget_ks: [2, 9]\n", "metrics.budget_ks: [9] outside 1..8"),
    # fixed guesses need both counts; chosen ones neither
    "one-run k half set": ("audit:\n  one_run: {k_pos: 10}\n", "audit.one_run: set both"),
    "one-run k negative": ("audit:\n  one_run: {k_pos: -1, k_neg: 2}\n", "k_pos"),
    # YAML that Snakemake reads leniently: the Snakefile re-reads it strictly
    "duplicate key": ("train:\n  epochs: 3\n  epochs: 4\n", "bad.yaml:3: duplicate key 'epochs'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_fails_before_any_job(tmp_path, case):
    text, key = BAD[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    env = subprocess_env()
    proc = subprocess.run(
        [
            *SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "-n",
            "--cores",
            "1",
            "--configfile",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert key in out, out
    assert "Job stats" not in out  # nothing was planned
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_schema_defaults_are_the_default_config_without_model_shapes():
    """Omitted keys come from the schema's defaults: the default config's workflow values,
    but no model shape (model_kwargs default to {}, the architecture's own defaults)."""
    import yaml
    from snakemake.utils import validate

    filled = {}
    validate(filled, str(REPO / "config" / "schema.yaml"), set_default=True)
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert default["train"]["model_kwargs"] and default["dp_sweep"]["train"]["model_kwargs"]
    default["train"]["model_kwargs"] = {}
    default["dp_sweep"]["train"]["model_kwargs"] = {}
    assert filled == default


def test_every_schema_key_is_described():
    import yaml

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}{key} has no description"
            walk(sub, f"{path}{key}.")
        if "items" in node:
            walk(node["items"], f"{path}[].")

    walk(schema, "")
