"""Job groups that Snakemake cannot build (curvmia/groups.py), without Snakemake; and the
workflow's own check at parse time, which names the group, the rules and the path."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _util import fresh_clone, subprocess_env

from curvmia.groups import GroupCycle, check_groups, group_cycles, profile_groups

REPO = Path(__file__).resolve().parents[1]

# The workflow's shape around the two groups (rule -> the rules it reads from), with
# Feldman & Zhang's membership matrix between the prepared data and the masks.
DEPS = {
    "prepare_data": [],
    "fz_membership": ["prepare_data"],
    "make_masks": ["prepare_data", "fz_membership"],
    "train": ["prepare_data", "make_masks"],
    "score": ["train", "make_masks"],
    "model_summary": ["train"],
    "health": ["model_summary"],
    "attack": ["score", "health", "make_masks"],
    "metrics": ["attack", "health"],
    "all": ["metrics"],
}
POST = {"model_summary": "post", "health": "post", "attack": "post", "metrics": "post"}


def test_a_member_reached_through_an_outside_rule_is_named_with_its_path():
    groups = {"prepare_data": "prep", "make_masks": "prep", **POST}
    assert group_cycles(DEPS, groups) == [
        GroupCycle("prep", ("prepare_data", "fz_membership", "make_masks"))
    ]
    with pytest.raises(ValueError) as e:
        check_groups(DEPS, groups, "profiles/default/config.yaml")
    assert str(e.value) == (
        "profiles/default/config.yaml: job groups that cannot run as one job:\n"
        "  group 'prep': rule make_masks depends on rule(s) fz_membership outside the group, "
        "which depend(s) on rule prepare_data inside it (path prepare_data -> fz_membership "
        "-> make_masks). Put fz_membership in group 'prep' too, or take prepare_data or "
        "make_masks out of it."
    )


def test_the_outside_rule_in_the_group_or_a_member_out_of_it_is_fine():
    check_groups(DEPS, {"prepare_data": "prep", "fz_membership": "prep", "make_masks": "prep"})
    check_groups(DEPS, {"fz_membership": "prep", "make_masks": "prep", **POST})
    check_groups(DEPS, POST)  # post: model_summary -> health -> attack -> metrics, all in
    check_groups(DEPS, {})


def test_longer_paths_and_several_groups():
    # post without health: model_summary -> health -> attack leaves the group and comes back
    post = {r: g for r, g in POST.items() if r != "health"}
    assert group_cycles(DEPS, post) == [
        GroupCycle("post", ("model_summary", "health", "attack")),
        GroupCycle("post", ("model_summary", "health", "metrics")),
    ]
    # a group spanning the training: train -> score -> attack, and two rules outside
    deps = {**DEPS, "score": ["train", "make_masks"], "attack": ["score"]}
    found = group_cycles(deps, {"make_masks": "g", "attack": "g"})
    # the shortest of the paths (not make_masks -> train -> score -> attack)
    assert found == [GroupCycle("g", ("make_masks", "score", "attack"))]


def test_rules_the_config_does_not_define_are_ignored():
    deps = {r: d for r, d in DEPS.items() if r != "fz_membership"}
    deps["make_masks"] = ["prepare_data"]
    groups = {"prepare_data": "prep", "make_masks": "prep", "fz_membership": "prep"}
    assert group_cycles(deps, groups) == []


def test_shipped_workflow_profile_groups():
    groups = profile_groups(REPO / "profiles" / "default" / "config.yaml")
    assert {r for r, g in groups.items() if g == "prep"} == {
        "prepare_data",
        "fz_membership",
        "make_masks",
        "dp_members",
        "size_members",
    }
    assert group_cycles(DEPS, groups) == []


def test_bad_groups_stop_at_parse_time_for_any_target(tmp_path):
    """The group assignment of 0987ad6 (fz_membership outside prep) with the Feldman & Zhang
    config: the dry run of a target that holds no prep job (fz_export of one model) stops
    before planning, naming the file, the group and the path; with fz_membership in prep
    it plans."""
    clone = fresh_clone(tmp_path / "curvmia")
    from PIL import Image

    d = clone / "data/ILSVRC2012/train/n01"
    d.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(d / "a.JPEG")
    (clone / "data/fz/imagenet-resnet50/0.7/0/checkpoints").mkdir(parents=True)
    profile = clone / "profiles" / "default" / "config.yaml"
    shipped = yaml.safe_load(profile.read_text())
    bad = dict(shipped, groups={r: g for r, g in shipped["groups"].items() if r != "fz_membership"})
    profile.write_text(yaml.safe_dump(bad))
    target = "results/imagenet-fz/fz/export/model_0.npz"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        target,
        "--configfile",
        "config/imagenet-fz.yaml",
    ]
    env = {**subprocess_env(), "PYTHONPATH": str(clone)}
    proc = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{profile}: job groups that cannot run as one job:" in out, out[-3000:]
    assert "group 'prep': rule make_masks depends on rule(s) fz_membership" in out
    assert "(path prepare_data -> fz_membership -> make_masks)" in out
    assert "Job stats" not in out
    profile.write_text(yaml.safe_dump(shipped))
    proc = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
