"""ImageFolder data (ImageNet or a user's): layout check, center crop into a memmapped array."""

import numpy as np
import pytest
from PIL import Image

from curvmia.data import load_prepared, prepare


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_folder(root, rng, classes=("cat", "dog", "eel"), n=4, val=True):
    imgs = {}
    for split, count in (("train", n), ("val", 2)) if val else (("train", n),):
        for c in classes:
            for i in range(count):
                # 12 x 16 RGB (W > H): resize shorter side to 8 -> 8 x 11 (rounded), crop 8
                arr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
                p = root / split / c / f"{i}.png"
                _png(p, arr)
                imgs[(split, c, i)] = arr
    return imgs


def test_imagefolder_with_val(tmp_path):
    rng = np.random.default_rng(0)
    imgs = make_folder(tmp_path / "src", rng)
    m = prepare(
        "imagefolder",
        tmp_path / "out",
        test_size=1,
        split_seed=0,
        path=tmp_path / "src",
        image_size=8,
        resize=8,
        log=lambda s: None,
    )
    d = load_prepared(tmp_path / "out", verify="full")
    assert m["classes"] == ["cat", "dog", "eel"] and m["num_classes"] == 3
    assert d.train_images.shape == (12, 3, 8, 8) and d.train_images.dtype == np.uint8
    assert d.test_images.shape == (6, 3, 8, 8)
    np.testing.assert_array_equal(d.train_labels, np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(d.test_labels, np.repeat([0, 1, 2], 2))
    # reference crop by hand with PIL: 16x12 -> (11, 8) bilinear, crop columns 1..8
    ref = Image.fromarray(imgs[("train", "dog", 2)]).resize((11, 8), Image.BILINEAR)
    ref = np.asarray(ref)[:, 1:9].transpose(2, 0, 1)
    np.testing.assert_array_equal(d.train_images[4 + 2], ref)
    # statistics measured on the population when not ImageNet-sized
    x = d.train_images / 255.0
    np.testing.assert_allclose(m["mean"], x.mean(axis=(0, 2, 3)), rtol=1e-9)


def test_imagefolder_without_val_splits_train(tmp_path):
    make_folder(tmp_path / "src", np.random.default_rng(1), n=5, val=False)
    m = prepare(
        "imagefolder",
        tmp_path / "out",
        test_size=3,
        split_seed=0,
        path=tmp_path / "src",
        image_size=8,
        resize=8,
        log=lambda s: None,
    )
    assert (m["n_train"], m["n_test"]) == (12, 3)
    assert np.bincount(load_prepared(tmp_path / "out").test_labels).tolist() == [1, 1, 1]


@pytest.mark.parametrize("setup", ["missing", "no_classes", "empty_class_dir", "bad_val"])
def test_layout_errors_name_the_expected_layout(tmp_path, setup):
    root = tmp_path / "src"
    if setup == "no_classes":
        (root / "train").mkdir(parents=True)
    elif setup == "empty_class_dir":
        (root / "train" / "cat").mkdir(parents=True)
    elif setup == "bad_val":
        make_folder(root, np.random.default_rng(2), val=False)
        _png(root / "val" / "zebra" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"data.path: .*train/<class>/<image>"):
        prepare("imagefolder", tmp_path / "out", test_size=1, split_seed=0, path=root)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
