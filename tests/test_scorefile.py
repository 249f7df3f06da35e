"""Score files are checked field by field on every read; a legitimately NaN attack score
never crashes a later step."""

import json

import numpy as np
import pytest

from curvmia.exposure import per_example_frame, vulnerability_frame
from curvmia.io import save_npz
from curvmia.scorefile import load_score_file
from curvmia.scores import load_features


def _arrays(nprobes=1, n=6):
    rng = np.random.default_rng(0)
    out = {}
    for prefix, m in (("", n), ("test_", 3)):
        p = rng.uniform(0.1, 0.9, (m, 2))
        nan = np.full((m, 2), np.nan)
        out.update({
            prefix + "loss": -np.log(p), prefix + "p_true": p,
            prefix + "p_max": np.maximum(p, 0.5),
            prefix + "phi": rng.normal(size=(m, 2)), prefix + "phi_max": rng.normal(size=(m, 2)),
            prefix + "mentr": rng.uniform(0, 2, (m, 2)),
            prefix + "curv_zo": rng.uniform(0, 1, (m, 2)),
            prefix + "curv_hutch": rng.normal(size=(m, 2)) if nprobes else nan,
            prefix + "curv_hutch_sq": rng.uniform(0, 3, (m, 2)) if nprobes else nan,
        })  # fmt: skip
    out["meta"] = np.array(json.dumps({"scoring": {"hutch_nprobes": nprobes}}))
    return out


@pytest.mark.parametrize("nprobes", [0, 1])
def test_legitimate_score_files_load(tmp_path, nprobes):
    save_npz(tmp_path / "s.npz", **_arrays(nprobes))
    assert np.isnan(load_score_file(tmp_path / "s.npz")["curv_hutch"]).all() == (nprobes == 0)


BROKEN = {
    "NaN logit feature": ("phi", np.nan, 1, "test_phi: 1 of 6 values are NaN or infinite"),
    "infinite loss": ("loss", np.inf, 1, "loss: 1 of 12 values are NaN or infinite"),
    "negative loss": ("loss", -0.5, 1, "loss: values in [-0.5"),
    "probability above 1": ("p_true", 1.5, 1, "p_true: values in ["),
    "NaN curvature": ("curv_zo", np.nan, 1, "curv_zo: 1 of 12 values are NaN"),
    "NaN tr(H) though computed": ("curv_hutch", np.nan, 1, "curv_hutch: 1 of 12 values are NaN"),
    "tr(H) where not computed": ("curv_hutch", 0.5, 0, "curv_hutch: must be all NaN"),
    "negative tr(H^2)": ("curv_hutch_sq", -1.0, 1, "curv_hutch_sq: values in [-1"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_field_names_file_and_field(tmp_path, case):
    field, value, nprobes, message = BROKEN[case]
    arrays = _arrays(nprobes)
    key = ("test_" if "test_" in message else "") + field
    arrays[key] = arrays[key].copy()
    arrays[key][1, 0] = value
    path = tmp_path / "model_3.npz"
    save_npz(path, **arrays)
    with pytest.raises(ValueError) as e:
        load_score_file(path)
    assert str(e.value).startswith(f"{path}: field ") and message in str(e.value)


def test_nan_filled_shadow_score_file_stops_the_attack(tmp_path):
    """A NaN-filled shadow score file gave Curv NLL AUROC 0.500 with no warning."""
    save_npz(tmp_path / "model_0.npz", **_arrays())
    bad = {k: (np.full_like(v, np.nan) if k != "meta" else v) for k, v in _arrays().items()}
    save_npz(tmp_path / "model_1.npz", **bad)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'model_1.npz'}: field loss: 12 of 12"):
        load_features([str(tmp_path / "model_0.npz"), str(tmp_path / "model_1.npz")])


def test_all_nan_attack_scores_keep_their_column():
    """per_example crashed with KeyError: 'score_curv_nll' on an all-NaN attack."""
    member = np.array([[1, 0, 1, 0]], bool)
    results = {
        "yeom": {"targets": np.array([4]), "scores": np.array([[0.1, 0.5, 0.3, 0.2]]),
                 "is_member": member},
        "curv_nll": {"targets": np.array([4]), "scores": np.full((1, 4), np.nan),
                     "is_member": member},
    }  # fmt: skip
    tidy = per_example_frame(results, np.array([0, 1, 0, 1]))
    for rank in ("yeom", "curv_nll"):
        vuln = vulnerability_frame(tidy, rank)
        assert vuln["score_curv_nll"].isna().all()
        assert list(vuln.loc[vuln.n_targets_member > 0, "score_yeom"].sort_values()) == [0.1, 0.3]


def test_truncated_score_file_names_the_file(tmp_path):
    path = tmp_path / "model_2.npz"
    save_npz(path, **_arrays())
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=f"^{path}: not a readable .npz file"):
        load_score_file(path)


def test_read_score_meta_reads_the_record_alone_and_names_a_damaged_file(tmp_path):
    from curvmia.scorefile import read_score_meta

    path = tmp_path / "s.npz"
    np.savez(path, loss=np.zeros((2, 1)), meta=np.array(json.dumps({"row": 3, "n": 2})))
    assert read_score_meta(path) == {"row": 3, "n": 2}
    np.savez(tmp_path / "nometa.npz", loss=np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"nometa\.npz: not a readable score file .*no meta"):
        read_score_meta(tmp_path / "nometa.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"cut\.npz: not a readable score file \(BadZipFile"):
        read_score_meta(tmp_path / "cut.npz")
    with pytest.raises(FileNotFoundError):
        read_score_meta(tmp_path / "absent.npz")
