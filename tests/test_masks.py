"""Masks: membership balance, exact complements, seeding, sound layouts (docs/method.md: Membership
layouts)."""

import numpy as np
import pytest
import yaml

from curvmia.masks import check_layout, complement_of, make_masks, n_rows


def test_complements_exact_and_each_sample_in_half():
    m = make_masks(1000, 8, 0.5, seed=3, complements=True)
    assert m.shape == (16, 1000) and m.dtype == bool
    np.testing.assert_array_equal(m[8:], ~m[:8])
    # every sample is in exactly half of the rows when complements are on
    np.testing.assert_array_equal(m.sum(0), np.full(1000, 8))
    # each random row keeps about pkeep of the population (binomial, 5 sigma)
    assert np.all(np.abs(m[:8].mean(1) - 0.5) < 5 * np.sqrt(0.25 / 1000))


def test_random_rows_are_bernoulli_pkeep():
    m = make_masks(20000, 4, 0.7, seed=0, complements=False)
    assert m.shape == (4, 20000)
    assert np.all(np.abs(m.mean(1) - 0.7) < 5 * np.sqrt(0.21 / 20000))
    # rows are independent draws: the overlap of two rows is about pkeep^2
    assert abs((m[0] & m[1]).mean() - 0.49) < 0.02


def test_seeded():
    """Row i is the seed's i-th Bernoulli(pkeep) row of numpy's default generator (the
    draw curvmia.masks documents), complements follow; another seed gives other rows."""
    a = make_masks(500, 5, 0.5, seed=1, complements=True)
    want = np.random.default_rng(1).random((5, 500)) < 0.5
    np.testing.assert_array_equal(a, np.concatenate([want, ~want]))
    b = make_masks(500, 3, 0.3, seed=4, complements=False)
    np.testing.assert_array_equal(b, np.random.default_rng(4).random((3, 500)) < 0.3)
    c = make_masks(500, 5, 0.5, seed=2, complements=True)
    assert 0.4 < (a != c).mean() < 0.6  # independent rows differ in half the samples


def test_complement_index():
    assert complement_of(2, 8, True) == 10
    assert complement_of(10, 8, True) == 2
    assert complement_of(2, 8, False) is None


def test_layouts():
    # (a) complete complement pairs as shadows, a pair as targets
    assert check_layout([0, 1, 2, 4, 5, 6], [3, 7], 4, True) == "pairs"
    # (b) the paper's: random rows only, no complements
    assert check_layout(list(range(64)), [64, 65, 66], 128, False) == "independent"
    # a target whose complement is a shadow is refused, naming the key
    with pytest.raises(ValueError, match="masks.targets"):
        check_layout([0, 1, 2, 3, 4, 5, 6], [7], 4, True)
    with pytest.raises(ValueError, match="also shadows"):
        check_layout([0, 1, 2], [2], 4, True)
    with pytest.raises(ValueError, match="outside"):
        check_layout([0, 1], [9], 4, True)


@pytest.mark.parametrize("path", ["config/config.yaml", "tests/config/test.yaml"])
def test_project_layouts_are_sound(repo_root, path):
    cfg = yaml.safe_load((repo_root / path).read_text())["masks"]
    layout = check_layout(cfg["shadows"], cfg["targets"], cfg["n_random"], cfg["complements"])
    assert layout == "pairs"
    m = make_masks(300, cfg["n_random"], cfg["pkeep"], cfg["seed"], cfg["complements"])
    # with complete shadow pairs every sample is IN exactly half of the shadows
    np.testing.assert_array_equal(m[cfg["shadows"]].sum(0), len(cfg["shadows"]) // 2)


def test_bad_settings_name_their_key():
    with pytest.raises(ValueError, match=r"masks.complements needs masks.pkeep = 0.5, got 0.3"):
        make_masks(10, 2, 0.3, seed=0, complements=True)
    for pkeep in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"masks.pkeep must be in \(0, 1\)"):
            make_masks(10, 2, pkeep, seed=0, complements=False)
    assert n_rows(4, True) == 8 and n_rows(4, False) == 4
    with pytest.raises(ValueError, match=r"masks.shadows: at least one row is needed"):
        check_layout([], [1], 4, False)
    with pytest.raises(ValueError, match=r"masks.targets: at least one row is needed"):
        check_layout([0, 1], [], 4, False)
    # the last row is total − 1: row 4 of 4 random rows without complements is outside
    with pytest.raises(ValueError, match=r"masks.targets: rows \[4\] outside the mask set's 0..3"):
        check_layout([0, 1], [4], 4, False)
    with pytest.raises(ValueError, match=r"masks.shadows: rows \[-1\] outside"):
        check_layout([-1, 1], [2], 4, False)
    with pytest.raises(ValueError, match=r"masks.shadows: duplicate rows in \[0, 0\]"):
        check_layout([0, 0], [2], 4, False)
    with pytest.raises(ValueError, match=r"masks.targets: rows \[1\] are also shadows"):
        check_layout([0, 1], [1], 4, False)
    with pytest.raises(
        ValueError, match=r"^masks\.shadows: need at least 2 shadows for IN/OUT statistics$"
    ):
        check_layout([0], [1], 4, False)
    with pytest.raises(
        ValueError,
        match=r"rows \[7\] have their complement among the shadows; this "
        r"biases every IN/OUT statistic \(docs/method.md: Membership layouts\)\. "
        r"Use complete shadow pairs",
    ):
        check_layout([0, 1, 2, 3], [7], 4, True)
    # complements on, but shadows not in complete pairs and no target clash: independent
    assert check_layout([0, 1], [2], 4, True) == "independent"
    assert check_layout([0, 1], [3, 2], 4, False) == "independent"
