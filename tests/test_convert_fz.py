"""Feldman & Zhang's ImageNet models: the TensorFlow → PyTorch converter, the example-order
map, the membership matrix, the correctness check, and the conversion rules end to end.

The real checkpoints (367 GB) cannot be downloaded here.  The converter test builds a
Sonnet ResNet-50 with EVERY variable random (BatchNorm scales and moving statistics
included), saves it as the release does, converts it and compares the stem (after the
asymmetric SAME max-pool), every block group and the logits with TensorFlow's on the same
inputs.  TensorFlow runs in its own environment, built by `make tf-env` from envs/tf.lock
when missing (cached in .venv-tf afterwards).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _util import snakemake_cmd, subprocess_env

from curvmia import fz
from curvmia.sonnet_resnet import SamePad

REPO = Path(__file__).resolve().parents[1]
TF_PYTHON = REPO / ".venv-tf" / "bin" / "python"
SIZE = 64  # even: the max-pool's SAME padding is asymmetric (0 above, 1 below)


@pytest.fixture(scope="session")
def tf_python() -> Path:
    """The TensorFlow environment's python, built from envs/tf.lock when missing."""
    proc = subprocess.run(
        ["make", "-s", "tf-env"], cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert TF_PYTHON.exists()
    return TF_PYTHON


def run_tf(tf_python: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(
        [str(tf_python), str(REPO / "tests" / "fz_tf_fixture.py"), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def random_export(tf_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fz_random")
    log = run_tf(tf_python, str(out), str(SIZE), "0")
    assert "randomised 267 variables" in log, log  # every conv, BN, EMA average and logit
    return out


def test_converted_model_matches_tensorflow(random_export, tmp_path):
    arrays = fz._npz(random_export / "export.npz")
    # nothing left at Sonnet's zero/one initial values (a zero model hides wrong mappings)
    for k, v in arrays.items():
        if k.startswith("w/"):
            assert np.abs(v).min() > 0 or v.std() > 0.01, k
    assert not np.allclose(arrays["w/layer1.0.bn3.weight"], 0)
    assert not np.allclose(arrays["w/bn1.running_var"], 1)
    info = fz.convert_export(random_export / "export.npz", tmp_path / "m.pt", rtol=1e-4)
    assert set(info["probe_rel_error"]) == set(fz.PROBE_KEYS)
    assert max(info["probe_rel_error"].values()) <= 1e-4, info
    assert info["probe_size"] == SIZE and info["tf_epoch"] == 90
    # the saved checkpoint rebuilds through the workflow's loader, same function
    from curvmia.checkpoint import load_checkpoint

    model, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["arch"] == "sonnet_resnet50" and meta["num_classes"] == 1000
    x = torch.from_numpy(arrays["probe/input"])
    with torch.no_grad():
        got = model(x).numpy()
    ref = arrays["probe/logits"]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    # scoring's Conv-BN folding traces through the explicit max-pool padding
    from curvmia.curvature import fold_batchnorm

    folded, pairs = fold_batchnorm(model)
    assert pairs == 53
    with torch.no_grad():
        assert np.abs(folded(x).numpy() - ref).max() <= 1e-4 * np.abs(ref).max()


def test_probe_catches_symmetric_pooling_and_swapped_statistics(random_export):
    """The comparison can fail: PyTorch's own max-pool padding, or a BatchNorm's mean and
    variance swapped, move the outputs far beyond the tolerance."""
    arrays = fz._npz(random_export / "export.npz")
    model = fz.model_from_export(arrays)
    model.pool_pad, model.maxpool = torch.nn.Identity(), torch.nn.MaxPool2d(3, 2, 1)
    errs = fz.probe_errors(model, arrays)
    assert errs["stem"] > 1e-2 and errs["logits"] > 1e-3, errs
    swapped = dict(arrays)
    swapped["w/layer3.2.bn2.running_mean"] = arrays["w/layer3.2.bn2.running_var"]
    swapped["w/layer3.2.bn2.running_var"] = np.abs(arrays["w/layer3.2.bn2.running_mean"])
    errs = fz.probe_errors(fz.model_from_export(swapped), swapped)
    assert errs["stem"] < 1e-5 and errs["layer3"] > 1e-3, errs


def test_bad_export_stops_and_writes_nothing(random_export, tmp_path):
    arrays = fz._npz(random_export / "export.npz")
    bad = dict(arrays)
    bad["probe/logits"] = arrays["probe/logits"] * 1.01
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match=r"logits differs from TensorFlow's"):
        fz.convert_export(tmp_path / "bad.npz", tmp_path / "m.pt")
    short = {k: v for k, v in arrays.items() if k != "w/layer2.0.downsample.1.running_var"}
    np.savez(tmp_path / "short.npz", **short)
    with pytest.raises(ValueError, match=r"missing weights \['layer2.0.downsample.1.running_var"):
        fz.convert_export(tmp_path / "short.npz", tmp_path / "m.pt")
    assert not list(tmp_path.glob("m.pt*")) and not list(tmp_path.glob(".m.pt*"))


def test_same_pad_matches_tensorflow_rule():
    """SAME: total = (ceil(n/s) - 1)*s + k - n, the extra row/column after (bottom/right)."""
    pad = SamePad(3, 2)
    for n, (before, after) in {6: (0, 1), 7: (1, 1), 8: (0, 1)}.items():
        x = torch.ones(1, 1, n, n)
        y = pad(x)
        assert y.shape[-1] == n + before + after
        assert y[0, 0, :, :before].sum() == 0 and y[0, 0, :, n + before :].sum() == 0
        assert y[0, 0, before:, before].sum() == n  # the first image column, in place


# ---------------------------------------------------------------- order and membership


def test_order_map_recovers_a_known_permutation_and_checks_labels():
    rng = np.random.default_rng(1)
    pop_files = [f"train/n0{c}/n0{c}_{i}.JPEG" for c in range(3) for i in range(5)]
    pop_labels = np.repeat(np.arange(3), 5)
    true = rng.permutation(15)  # F&Z example i is population position true[i]
    names = np.asarray([Path(pop_files[p]).name for p in true])
    perm = fz.order_map(names, pop_labels[true], pop_files, pop_labels)
    assert np.array_equal(perm, true)
    with pytest.raises(ValueError, match="labels differ"):
        fz.order_map(names, (pop_labels[true] + 1) % 3, pop_files, pop_labels)
    with pytest.raises(ValueError, match="is not in the population"):
        fz.order_map(
            np.where(names == names[4], "x.JPEG", names), pop_labels[true], pop_files, pop_labels
        )
    with pytest.raises(
        ValueError, match=r"file names repeat across class folders: \['n00_1.JPEG'\]"
    ):
        fz.order_map(names, pop_labels[true], [*pop_files[:-1], "train/n02/n00_1.JPEG"], pop_labels)
    with pytest.raises(ValueError, match="not the same ImageNet train set"):
        fz.order_map(names[:-1], pop_labels[true][:-1], pop_files, pop_labels)


def test_index_with_object_arrays_needs_its_sha256(tmp_path):
    names = np.array([b"a.JPEG", b"b.JPEG"], dtype=object)
    np.savez(
        tmp_path / "i.npz",
        tr_filenames=names,
        tr_labels=[0, 1],
        tt_filenames=names[:1],
        tt_labels=[0],
    )
    with pytest.raises(ValueError, match="fz.index_sha256"):
        fz.load_index(tmp_path / "i.npz")
    got = fz.load_index(tmp_path / "i.npz", allow_pickle=True)
    assert got["tr_filenames"].tolist() == ["a.JPEG", "b.JPEG"]
    np.savez(
        tmp_path / "s.npz",
        tr_filenames=np.array([b"x/a.JPEG"]),
        tr_labels=[3],
        tt_filenames=np.array([b"v.JPEG"]),
        tt_labels=[1],
    )
    assert fz.load_index(tmp_path / "s.npz")["tr_filenames"].tolist() == ["a.JPEG"]


def fake_aux(rng, n: int, keep: int, correct_fz: np.ndarray, correct_test_fz=None) -> dict:
    sub = np.sort(rng.choice(n, keep, replace=False))
    rest = np.setdiff1d(np.arange(n), sub)
    tr, rm = rng.permutation(sub), rng.permutation(rest)
    if correct_test_fz is None:
        correct_test_fz = np.zeros(4, bool)
    te = rng.permutation(len(correct_test_fz))
    return {
        "subsample_idx": sub,
        "index_train": tr,
        "index_removed": rm,
        "correctness_train": correct_fz[tr],
        "correctness_removed": correct_fz[rm],
        "index_test": te,
        "correctness_test": correct_test_fz[te],
    }


def test_membership_and_released_correctness_in_population_order():
    rng = np.random.default_rng(2)
    n = 20
    true = rng.permutation(n)
    correct_fz = rng.random(n) < 0.5
    auxes = [fake_aux(rng, n, 14, correct_fz) for _ in range(3)]
    for a in auxes:
        fz.check_aux(a, n, 4, "aux")
    m = fz.membership_matrix([a["subsample_idx"] for a in auxes], true)
    for r, a in enumerate(auxes):
        expected = np.zeros(n, bool)
        for i in a["subsample_idx"]:
            expected[true[i]] = True
        assert np.array_equal(m[r], expected)
    pop_correct = np.zeros(n, bool)
    pop_correct[true] = correct_fz
    assert np.array_equal(fz.released_correctness(auxes[0], true), pop_correct)
    bad = dict(
        auxes[0],
        index_train=auxes[0]["index_train"][1:],
        correctness_train=auxes[0]["correctness_train"][1:],
    )
    with pytest.raises(ValueError, match="not the 20 training examples"):
        fz.check_aux(bad, n, 4, "aux_arrays.npz")


# ---------------------------------------------------------------- the rules end to end


def write_imagefolder(root: Path, rng, classes: list[str], n_train: int, n_val: int) -> None:
    from PIL import Image

    for split, k in (("train", n_train), ("val", n_val)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(k):
                img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
                name = f"{c}_{i}.png" if split == "train" else f"val_{c}_{i}.png"
                Image.fromarray(img).save(d / name)


def test_conversion_rules_end_to_end(tf_python, tmp_path):
    """A fake release of 3 runs (F&Z orders = seeded shuffles of the population and of the
    held-out split, correctness = TensorFlow's own predictions): fz_all converts all, maps
    both orders, and every check agrees; a release whose correctness disagrees stops the
    workflow with the message."""
    rng = np.random.default_rng(3)
    classes = ["n01", "n02", "n03"]
    write_imagefolder(tmp_path / "imagenet", rng, classes, 8, 2)
    cfg = yaml.safe_load((REPO / "config" / "imagenet-fz.yaml").read_text())
    cfg["data"].update(path="imagenet", image_size=SIZE, resize=SIZE, workers=1)
    cfg["compute"].update(threads=1, loader_workers=0, device="cpu")
    cfg["masks"].update(n_random=3, shadows=[0, 1], targets=[2])
    # the converted models' input contract, for these small images (imported.fz_input)
    cfg["imported"]["fz_input"].update(image_size=SIZE, resize=SIZE, num_classes=3)
    cfg["fz"].update(
        root="release/0.7",
        runs=[7, 3, 5],
        index="release/imagenet_index.npz",
        python=str(tf_python),
        probe_size=SIZE,
        check_examples=24,
    )
    config = tmp_path / "fz.yaml"
    config.write_text(yaml.safe_dump(cfg))
    from curvmia.data import prepared_dir_name

    data_dir = prepared_dir_name(cfg["data"])  # named by its content settings
    env = subprocess_env()
    prep = subprocess.run(
        snakemake_cmd(
            tmp_path, config, "--cores", "1", f"{cfg['data']['root']}/{data_dir}/manifest.json"
        ),
        capture_output=True,
        text=True,
        env=env,
    )
    assert prep.returncode == 0, prep.stdout[-3000:] + prep.stderr[-3000:]
    prepared = tmp_path / cfg["data"]["root"] / data_dir
    labels = np.load(prepared / "train_labels.npy")
    test_labels = np.load(prepared / "test_labels.npy")
    images = [np.load(prepared / f"{k}_images.npy") for k in ("train", "test")]
    np.save(tmp_path / "pop.npy", np.concatenate(images))
    # one randomised checkpoint, its TensorFlow predictions on the prepared images
    run_tf(
        tf_python,
        str(tmp_path / "tfm"),
        str(SIZE),
        "5",
        "--classes",
        "3",
        "--no-export",
        "--predict",
        str(tmp_path / "pop.npy"),
    )
    n, n_test = len(labels), len(test_labels)
    pred, pred_test = np.split(np.load(tmp_path / "tfm/predictions.npy"), [n])
    assert 0.1 < (pred == labels).mean() < 0.9  # varied: a wrong order would show
    true = rng.permutation(n)  # F&Z example i = population position true[i]
    true_test = rng.permutation(n_test)  # their val example j = held-out position
    names = [f"{classes[labels[p]]}_{p - 8 * labels[p]}.png" for p in true]
    val_names = [f"val_{classes[test_labels[p]]}_{p - 2 * test_labels[p]}.png" for p in true_test]
    (tmp_path / "release").mkdir()
    np.savez(
        tmp_path / "release/imagenet_index.npz",
        tr_filenames=np.array(names, dtype="S"),
        tr_labels=labels[true],
        tt_filenames=np.array(val_names, dtype="S"),
        tt_labels=test_labels[true_test],
    )
    correct_fz = (pred == labels)[true]
    members = {}
    for run in (7, 3, 5):
        d = tmp_path / "release/0.7" / str(run)
        shutil.copytree(tmp_path / "tfm/checkpoints", d / "checkpoints")
        aux = fake_aux(rng, n, 17, correct_fz, (pred_test == test_labels)[true_test])
        np.savez(d / "aux_arrays.npz", **aux)
        members[run] = aux["subsample_idx"]
    proc = subprocess.run(
        snakemake_cmd(tmp_path, config, "--cores", "2", "fz_all"),
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = tmp_path / "results/imagenet-fz/fz"
    m = np.load(out / "membership.npy")
    assert m.shape == (3, n) and m.dtype == bool
    for row, run in enumerate((7, 3, 5)):
        expected = np.zeros(n, bool)
        expected[true[members[run]]] = True
        assert np.array_equal(m[row], expected)
        check = json.loads((out / f"check/model_{row}.json").read_text())
        pop, held_out = check["population"], check["held-out"]
        assert pop["n"] == n and pop["agreement"] == 1.0, check
        assert held_out["n"] == n_test and held_out["agreement"] == 1.0, check
        ckpt = torch.load(out / f"models/model_{row}.pt", weights_only=True)
        assert ckpt["source"]["run"] == run and ckpt["arch"] == "sonnet_resnet50"
    assert np.array_equal(np.load(out / "order.npy"), true)
    assert np.array_equal(np.load(out / "order_test.npy"), true_test)
    assert not (out / "export").exists() or not list((out / "export").iterdir())  # temp()
    # a release that disagrees (its correctness flipped on a third): the check stops
    d = tmp_path / "release/0.7/3"
    aux = fz._npz(d / "aux_arrays.npz")
    flip = rng.random(len(aux["correctness_train"])) < 0.35
    aux["correctness_train"] = aux["correctness_train"] ^ flip
    np.savez(d / "aux_arrays.npz", **aux)
    proc = subprocess.run(
        snakemake_cmd(tmp_path, config, "--cores", "1", "fz_all"),
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode != 0
    log = (tmp_path / "results/imagenet-fz/logs/fz/check_1.log").read_text()
    assert "population images (< fz.min_agreement 0.99)" in log, log[-2000:]
    assert not (out / "check/model_1.json").exists()


def test_fz_config_errors_stop_before_any_job(tmp_path):
    """A run list that does not match the mask rows stops the dry run, naming fz.runs."""
    from PIL import Image

    (tmp_path / "imagenet/train/n01").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "imagenet/train/n01/a.png")
    cfg = yaml.safe_load((REPO / "config" / "imagenet-fz.yaml").read_text())
    cfg["data"]["path"] = "imagenet"
    cfg["fz"]["runs"] = list(range(54))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        snakemake_cmd(tmp_path, tmp_path / "c.yaml", "-n", "fz_all"),
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "fz.runs: 54 runs, but masks.n_random is 55" in out, out[-2000:]
    assert "Job stats" not in out


def test_tf_environment_files_agree():
    """The TF image installs exactly envs/tf.lock, whose pins include the requirement
    file's and carry hashes."""
    from test_containers import lock_entries, parse_def, read_pins

    req = read_pins(REPO / "envs/requirements-tf.txt")
    lock = read_pins(REPO / "envs/tf.lock")
    assert {"tensorflow-cpu", "dm-sonnet", "numpy"} <= set(req)
    assert all(lock[k] == v for k, v in req.items()), (req, lock)
    assert "torch" not in lock
    assert all(h for h in lock_entries(REPO / "envs/tf.lock").values())
    _, sections = parse_def(REPO / "containers/tf.def")
    post = "\n".join(sections["post"])
    assert "pip install --require-hashes -r /opt/curvmia/tf.lock" in post
    # envs/tf.yaml, the conda environment, is generated from tf.lock: tests/test_conda_env.py
    assert sys.version_info[:2] == (3, 11)  # the lock was compiled for Python 3.11
