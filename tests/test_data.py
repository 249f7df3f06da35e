"""Data: the canonical prepared form of digits, its checks, and batched augmentation."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from curvmia.data import load_prepared, prepare, random_crop_flip


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


@pytest.mark.parametrize("pad", [1, 2])
def test_random_crop_flip_matches_per_image_reference(pad):
    x = torch.arange(5 * 2 * 6 * 6, dtype=torch.float32).reshape(5, 2, 6, 6)
    out = random_crop_flip(x, pad, True, torch.Generator().manual_seed(3))
    # the same draws, applied one image at a time
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 2 * pad + 1, (5,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (5,), generator=g)
    flip = torch.rand(5, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    for i in range(5):
        ref = padded[i, :, dy[i] : dy[i] + 6, dx[i] : dx[i] + 6]
        if flip[i]:
            ref = ref.flip(-1)
        torch.testing.assert_close(out[i], ref, rtol=0, atol=0)
    # no augmentation is the identity
    same = random_crop_flip(x, 0, False, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x)


def test_random_crop_flip_without_padding_draws_only_the_flips():
    """pad = 0: no crop offsets are drawn, so the flips are the generator's first draws."""
    x = torch.arange(8 * 1 * 2 * 3, dtype=torch.float32).reshape(8, 1, 2, 3)
    out = random_crop_flip(x, 0, True, torch.Generator().manual_seed(3))
    flip = torch.rand(8, generator=torch.Generator().manual_seed(3)) < 0.5
    assert 0 < int(flip.sum()) < 8  # both branches are seen
    for i in range(8):
        torch.testing.assert_close(out[i], x[i].flip(-1) if flip[i] else x[i], rtol=0, atol=0)


def test_transforms_keep_every_tensor_on_the_images_device():
    """The meta device stands in for a GPU: a helper tensor left on the CPU is refused there."""
    from curvmia.data import normalize

    x = torch.empty(5, 2, 6, 6, device="meta")
    for out in (
        normalize(x, np.array([0.5, 0.2]), np.array([0.25, 0.1])),
        random_crop_flip(x, 2, True, torch.Generator().manual_seed(0)),
        random_crop_flip(x, 0, True, torch.Generator().manual_seed(0)),
    ):
        assert out.device == x.device and out.shape == x.shape and out.dtype == x.dtype


def test_normalize_and_to_float_by_hand():
    from curvmia.data import normalize, to_float

    u8 = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)  # (1, 2, 1, 2)
    x = to_float(u8)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, torch.tensor([[[[0.0, 1.0]], [[0.2, 0.4]]]]))
    z = normalize(x, np.array([0.5, 0.2]), np.array([0.25, 0.1]))
    assert z.dtype == torch.float32 and z.shape == x.shape
    torch.testing.assert_close(z, torch.tensor([[[[-2.0, 2.0]], [[0.0, 2.0]]]]))
    z64 = normalize(x.double(), [0.5, 0.2], [0.25, 0.1])
    assert z64.dtype == torch.float64
