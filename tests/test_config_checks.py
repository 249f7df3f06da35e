"""The config checks a JSON schema cannot express (curvmia/config_checks.py), called directly
on config dicts (config/config.yaml and config/imagenet-fz.yaml, modified): each error names
its key; the model checks (timm, torch) run only when ``deep``. tests/test_config.py checks
the same errors through a Snakemake dry run."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _util import subprocess_env

from curvmia.attacks import spec_label
from curvmia.config_checks import check_config, check_fz, hist_target, imported_entries

REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
FZ = yaml.safe_load((REPO / "config" / "imagenet-fz.yaml").read_text())
DIGITS_INPUT = {"range": [0, 1], "mean": [0.3], "std": [0.4], "resize": None, "crop": "none",
                "image_size": 8, "num_classes": 10, "in_chans": 1}  # fmt: skip


def config(**change) -> dict:
    """The default config with ``change``: {"section.key": value} (dots: nested keys)."""
    cfg = copy.deepcopy(DEFAULT)
    for path, value in change.items():
        *parents, last = path.split(".")
        node = cfg
        for k in parents:
            node = node[k]
        node[last] = value
    return cfg


def dp_train(**change) -> dict:
    return {**DEFAULT["dp_sweep"]["train"], **change}


# every error of check_config, and the key its message names
BAD = {
    "unsound layout": (  # 10 is the complement of shadow 0
        {"masks.shadows": [0, 1, 2, 3, 4, 5, 6], "masks.targets": [10]},
        "masks.targets",
    ),
    "complements need pkeep 0.5": ({"masks.pkeep": 0.7}, "masks.complements: needs"),
    "attack parameter": (
        {"attacks": [{"name": "yeom", "unit_variance": True}]},
        "attacks[0].unit_variance",
    ),
    "float32 fields": (
        {"scoring.variant": "clean", "attacks": [{"name": "curv_nll"}, {"name": "song"}]},
        "attacks[1].variant: the paper variant of 'song'",
    ),
    "duplicate labels": (
        {"attacks": [{"name": "yeom"}, {"name": "song", "label": "yeom"}]},
        "attacks: duplicate labels ['yeom']",
    ),
    "rank attack": ({"report.rank_attack": "nope"}, "report.rank_attack: 'nope'"),
    "hist target": ({"report.hist_target": 3}, "report.hist_target: 3 is not one of"),
}
# errors only the deep checks find (they build every model on the meta device)
DEEP = {
    "unknown architecture": ({"train.arch": "resnet_nonexistent_9"}, "train.arch: unknown"),
    "misspelt model keyword": ({"train.model_kwargs": {"widht": 64}}, "train.model_kwargs"),
    "negative width": ({"train.model_kwargs": {"width": -8}}, "train.model_kwargs"),
    "size-sweep override": ({"size_sweep.train": {"epochz": 1}}, "size_sweep.train: unknown"),
    "size-sweep model": (
        {"size_sweep.train": {"model_kwargs": {"width": -8}}},
        "size_sweep.train",
    ),
    "DP architecture": (
        {"dp_sweep.train": dp_train(arch="resnet_nonexistent_9")},
        "train.arch: unknown architecture 'resnet_nonexistent_9'",
    ),
    "DP model keyword": (
        {"dp_sweep.train": dp_train(arch="cifar_resnet", model_kwargs={"width": 0})},
        "dp_sweep.train.model_kwargs",
    ),
}


def test_default_config_passes_and_gives_the_attack_labels():
    want = [spec_label(s) for s in DEFAULT["attacks"]]
    assert "curv_nll_clean" in want and len(set(want)) == len(want)
    assert check_config(copy.deepcopy(DEFAULT), deep=False) == want
    assert check_config(copy.deepcopy(DEFAULT), deep=True) == want


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("deep", [False, True])
def test_bad_config_names_its_key(case, deep):
    change, key = BAD[case]
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        check_config(config(**change), deep=deep)


@pytest.mark.parametrize("case", sorted(DEEP))
def test_model_checks_run_only_when_deep(case):
    change, key = DEEP[case]
    with pytest.raises(ValueError) as err:
        check_config(config(**change), deep=True)
    assert key in str(err.value)
    # a cluster job parsing the workflow again skips them (never imports torch or timm)
    assert check_config(config(**change), deep=False) == [spec_label(s) for s in DEFAULT["attacks"]]


def test_deep_checks_build_each_model_with_the_dataset_shape(monkeypatch):
    """train, the size sweep's recipe (only when it differs) and the DP recipe."""
    import curvmia.models

    built = []
    real = curvmia.models.check_model_kwargs

    def record(arch, model_kwargs, key, **shape):
        built.append((key, shape))
        return real(arch, model_kwargs, key, **shape)

    monkeypatch.setattr(curvmia.models, "check_model_kwargs", record)
    digits = {"num_classes": 10, "in_chans": 1}
    same = {"size_sweep.train": {"epochs": DEFAULT["train"]["epochs"]}}
    check_config(config(**same), deep=True)
    assert built == [("train.model_kwargs", digits),
                     ("dp_sweep.train.model_kwargs", {"dp": True, **digits})]  # fmt: skip
    built.clear()
    check_config(config(**{"size_sweep.train": {"model_kwargs": {"width": 8}}}), deep=True)
    assert [k for k, _ in built] == [
        "train.model_kwargs", "size_sweep.train", "dp_sweep.train.model_kwargs"
    ]  # fmt: skip
    built.clear()
    check_config(config(**{"data.dataset": "cifar100"}), deep=True)
    assert built[0] == ("train.model_kwargs", {"num_classes": 100, "in_chans": 3})


def test_shallow_checks_import_neither_torch_nor_timm():
    """What a cluster job runs while it parses the workflow."""
    code = (
        "import sys, copy, yaml\n"
        "for name in ('torch', 'timm', 'torchvision'):\n"
        "    sys.modules[name] = None  # an import of it raises ImportError\n"
        "from curvmia.config_checks import check_config, imported_entries\n"
        f"cfg = yaml.safe_load(open({str(REPO / 'config' / 'config.yaml')!r}))\n"
        "check_config(copy.deepcopy(cfg), deep=False)\n"
        f"fz = yaml.safe_load(open({str(REPO / 'config' / 'imagenet-fz.yaml')!r}))\n"
        "print(len(imported_entries(fz, 'r', deep=False)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env()
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["55"], proc.stderr[-3000:]


# ---------------------------------------------------------------- imported entries


def entry(**change) -> dict:
    e = {"path": "m.pt", "row": 8, "role": "target", "sha256": "0" * 64,
         "format": "state_dict", "arch": "cifar_resnet", "input": DIGITS_INPUT}  # fmt: skip
    return {**e, **change}


def with_imported(models: list[dict], fz_input=None, fz=None) -> dict:
    cfg = config(imported={"models": models, "fz_input": fz_input})
    if fz is not None:
        cfg["fz"] = fz
    return cfg


def test_imported_entries_by_row_with_defaults_filled_in():
    assert imported_entries(copy.deepcopy(DEFAULT), "results/digits", deep=False) == {}
    members = {"source": "matrix", "path": "members.npy", "sha256": None}
    got = imported_entries(
        with_imported([entry(), entry(row=0, role="shadow", members=members)]),
        "results/digits",
        deep=False,
    )
    assert sorted(got) == [0, 8]
    assert got[8]["members"] is None and got[8]["trust"] is False
    assert got[8]["model_kwargs"] == {} and got[8]["arch"] == "cifar_resnet"
    assert got[0]["members"] == {**members, "index": None}


@pytest.mark.parametrize(
    "models, key",
    [
        ([entry(row=0)], "imported.models[0].row: row 0 has role target but is not one of"),
        ([entry(), entry()], "imported.models[1].row: row 8 is imported twice"),
        ([entry(row=0, role="shadow")], "imported.models[0].members: a shadow's"),
        ([entry(arch=None)], "imported.models[0].arch: format state_dict needs"),
        ([entry(format="torchscript")], "imported.models[0].trust"),
        ([entry(input={**DIGITS_INPUT, "num_classes": 100})], "imported.models[0].input"),
    ],
)
def test_bad_imported_entry_names_its_key(models, key):
    with pytest.raises(ValueError) as err:
        imported_entries(with_imported(models), "results/digits", deep=False)
    assert key in str(err.value)


def test_deep_imported_check_opens_the_files(tmp_path):
    """Without ``deep`` the files are never opened; with it, a missing one is named."""
    cfg = with_imported([entry(path=str(tmp_path / "gone.pt"))])
    assert list(imported_entries(cfg, "results/digits", deep=False)) == [8]
    with pytest.raises(ValueError, match=r"imported.models\[0\].path: .*gone.pt: no such file"):
        imported_entries(cfg, "results/digits", deep=True)


def test_fz_input_imports_every_row_from_the_conversion():
    got = imported_entries(copy.deepcopy(FZ), "results/x", deep=False)
    m = FZ["masks"]
    assert sorted(got) == sorted(m["shadows"] + m["targets"])
    e = got[53]
    assert e["role"] == "target" and got[0]["role"] == "shadow"
    assert e["path"] == "results/x/fz/models/model_53.pt" and e["sha256"] is None
    assert e["members"] == {"source": "matrix", "path": "results/x/fz/membership.npy",
                            "sha256": None, "index": 53}  # fmt: skip
    assert e["input"] == FZ["imported"]["fz_input"] and e["arch"] == "sonnet_resnet50"


def test_fz_input_needs_the_fz_section_and_no_other_entries():
    with pytest.raises(ValueError, match="imported.fz_input: needs the fz section"):
        imported_entries(with_imported([], fz_input=DIGITS_INPUT), "r", deep=False)
    fz = {"runs": [0]}
    with pytest.raises(ValueError, match="imported.fz_input: imports every row; leave"):
        imported_entries(with_imported([entry()], DIGITS_INPUT, fz), "r", deep=False)


# ---------------------------------------------------------------- histogram target, fz


def test_hist_target_default_is_the_first_target_with_known_members():
    cfg = copy.deepcopy(DEFAULT)  # targets [8, 9, 18, 19]
    assert hist_target(cfg, []) == 8
    assert hist_target(cfg, [8, 18]) == 9
    assert hist_target(cfg, [8, 9, 18, 19]) is None
    assert hist_target(config(**{"report.hist_target": 18}), [8]) == 18
    with pytest.raises(ValueError, match="report.hist_target: target 9 has unknown members"):
        hist_target(config(**{"report.hist_target": 9}), [9])


@pytest.mark.parametrize(
    "change, key",
    [
        ({"fz.runs": [0, 1]}, "fz.runs: 2 runs, but masks.n_random is 55"),
        ({"masks.complements": True}, "(complements True): one released run per model row"),
        ({"fz.runs": [0] * 55}, "fz.runs: a run id repeats"),
        ({"data.dataset": "cifar10"}, "fz: needs data.dataset imagefolder"),
    ],
)
def test_bad_fz_section_names_its_key(change, key):
    check_fz(copy.deepcopy(FZ))
    cfg = copy.deepcopy(FZ)
    for path, value in change.items():
        section, k = path.split(".")
        cfg[section][k] = value
    with pytest.raises(ValueError) as err:
        check_fz(cfg)
    assert key in str(err.value)
