"""A checkpoint is used only when it is what the workflow expects (row, recipe, members,
data), and an unreadable one is an error that names it."""

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from _util import snakemake_cmd, subprocess_env

from curvmia.checkpoint import load_checkpoint, save_checkpoint
from curvmia.identity import data_hash, members_hash
from curvmia.models import build_model

IDENTITY = {"row": 1, "train_hash": "aaaa", "members_hash": "bbbb", "data_hash": "cccc"}


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model_1.pt"
    model = build_model("cifar_resnet", 3, 1, {"width": 4, "layers": [1]})
    meta = {"arch": "cifar_resnet", "model_kwargs": {"width": 4, "layers": [1]}}
    save_checkpoint(path, model, {**meta, "num_classes": 3, "in_chans": 1, **IDENTITY})
    return path


@pytest.mark.parametrize("key", sorted(IDENTITY))
def test_mismatched_identity_names_file_and_both_values(checkpoint, key):
    load_checkpoint(checkpoint, expect=IDENTITY)  # the expected identity loads
    want = 0 if key == "row" else "other"
    with pytest.raises(ValueError) as e:
        load_checkpoint(checkpoint, expect={**IDENTITY, key: want})
    assert str(e.value).startswith(
        f"{checkpoint}: checkpoint {key} is {IDENTITY[key]!r}, the workflow expects {want!r}"
    )


def test_truncated_checkpoint_names_the_file(checkpoint):
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    with pytest.raises(ValueError, match=f"^{checkpoint}: not a readable checkpoint"):
        load_checkpoint(checkpoint)


def test_identity_hashes():
    assert members_hash(np.array([3, 1, 2])) == members_hash(np.array([1, 2, 3]))
    assert members_hash(np.array([1, 2, 3])) != members_hash(np.array([1, 2, 4]))
    manifest = {"sha256": {"a": "1"}, "mean": [0.5], "std": [0.2], "n_train": 3}
    assert data_hash(manifest) == data_hash({**manifest, "source": "/elsewhere"})
    assert data_hash(manifest) != data_hash({**manifest, "sha256": {"a": "2"}})


def test_checkpoint_copied_over_another_row_is_refused(test_config_run, tmp_path):
    """`cp model_0.pt model_1.pt` was scored silently as row 1 (Yeom's AUROC fell)."""
    work = tmp_path / "work"
    shutil.copytree(test_config_run, work, symlinks=True)
    models = work / "results" / "test" / "models"
    meta = torch.load(models / "model_1.pt", weights_only=True)
    assert meta["n_params"] == 5122  # width 8, layers [1, 1], 1 channel, 10 classes (by hand)
    assert meta["row"] == 1 and len(meta["members_hash"]) == len(meta["data_hash"]) == 16
    shutil.copy(models / "model_0.pt", models / "model_1.pt")
    from conftest import TEST_CONFIG

    # identity decides staleness (curvmia/staleness.py): the copy is named and retrained
    # (every load still refuses it: test_mismatched_identity_names_file_and_both_values)
    cmd = snakemake_cmd(work, TEST_CONFIG, "--cores", "1", "-n")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "results/test/models/model_1.pt: stale (row: stored 0, expected 1)" in out
    assert re.findall(r"output: (results/test/models/model_\d+\.pt)", out) == [
        "results/test/models/model_1.pt"
    ]


def test_flipped_byte_in_prepared_array_names_the_file(tmp_path):
    from curvmia.data import load_prepared, prepare

    prepare("digits", tmp_path / "d", test_size=1397, split_seed=0, log=lambda s: None)
    f = tmp_path / "d" / "train_images.npy"
    blob = bytearray(f.read_bytes())
    blob[-5] ^= 0xFF
    f.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=f"^{f}: sha256 does not match {tmp_path / 'd'}"):
        load_prepared(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="manifest.json: not a readable manifest"):
        load_prepared(tmp_path / "d")


def test_score_identity_is_the_checkpoints_plus_the_scoring_hash():
    from curvmia.identity import score_identity
    from curvmia.io import config_hash

    ckpt = {**IDENTITY, "arch": "x", "test_acc": 0.5}
    scoring = {"niter": 2, "h": 0.001}
    want = {**IDENTITY, "scoring_hash": config_hash(scoring)}
    assert score_identity(ckpt, scoring) == want
    sweep = {k: v for k, v in IDENTITY.items() if k != "row"}  # a sweep model has no row
    assert score_identity(sweep, scoring) == {**sweep, "scoring_hash": want["scoring_hash"]}
    assert score_identity(ckpt, {**scoring, "niter": 3})["scoring_hash"] != want["scoring_hash"]


def test_checkpoint_identity_names_the_recipe_members_and_data():
    from curvmia.identity import checkpoint_identity

    man = {"sha256": {"train_images": "x"}, "mean": [0.5], "std": [0.2], "num_classes": 10,
           "n_train": 4, "n_test": 2, "image_shape": [1, 8, 8], "source": "anywhere"}  # fmt: skip
    got = checkpoint_identity("r1", np.array([3, 1, 2]), man, row=5)
    assert got == {"row": 5, "train_hash": "r1", "members_hash": members_hash(np.array([1, 2, 3])),
                   "data_hash": data_hash({**man, "source": "elsewhere"})}  # fmt: skip
    assert "row" not in checkpoint_identity("r1", np.array([1]), man)  # a sweep model
