"""Data: the canonical prepared form of digits and its checks."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from curvmia.data import load_prepared, prepare


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    prepare("digits", out, test_size=297, split_seed=0)
    return out


def test_canonical_form(prepared):
    d = load_prepared(prepared)
    raw = load_digits()
    assert d.train_images.dtype == np.uint8 and d.train_images.shape == (1500, 1, 8, 8)
    assert d.test_images.shape == (297, 1, 8, 8)
    assert d.train_labels.dtype == np.int64
    m = d.manifest
    assert (m["n_train"], m["n_test"], m["num_classes"]) == (1500, 297, 10)
    # every image is one of the raw digits, stored as round(v·255/16)
    all_u8 = np.round(raw.images * 255 / 16).astype(np.uint8)
    both = np.concatenate([d.train_images[:, 0], d.test_images[:, 0]])
    assert sorted(map(bytes, both)) == sorted(map(bytes, all_u8))
    # normalisation constants of the population in [0, 1]
    assert m["mean"][0] == pytest.approx(d.train_images.mean() / 255, rel=1e-9)
    assert m["std"][0] == pytest.approx((d.train_images / 255.0).std(), rel=1e-9)


def test_split_is_disjoint_stratified_and_seeded(prepared, tmp_path):
    # disjointness: test_canonical_form shows population + test is exactly the raw multiset
    d = load_prepared(prepared)
    frac = np.bincount(d.test_labels, minlength=10) / np.bincount(load_digits().target)
    assert np.all(np.abs(frac - 297 / 1797) < 0.01)
    prepare("digits", tmp_path, test_size=297, split_seed=0)
    again = load_prepared(tmp_path)
    np.testing.assert_array_equal(again.test_images, d.test_images)
    prepare("digits", tmp_path, test_size=297, split_seed=1)
    assert not np.array_equal(load_prepared(tmp_path).test_labels, d.test_labels)


def test_corruption_is_detected(tmp_path):
    prepare("digits", tmp_path, test_size=100, split_seed=0)
    arr = np.load(tmp_path / "train_labels.npy")
    arr[0] = (arr[0] + 1) % 10
    np.save(tmp_path / "train_labels.npy", arr)
    with pytest.raises(ValueError, match="train_labels.npy"):
        load_prepared(tmp_path)


def test_bad_inputs_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="data.dataset"):
        prepare("mnist", tmp_path, test_size=10, split_seed=0)
    with pytest.raises(ValueError, match="data.test_size"):
        prepare("digits", tmp_path, test_size=5000, split_seed=0)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_manifest_hashes_match_arrays(prepared):
    import hashlib

    m = json.loads((prepared / "manifest.json").read_text())
    a = np.load(prepared / "test_labels.npy")
    h = hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()
    assert m["sha256"]["test_labels"] == h
