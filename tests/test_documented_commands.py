"""Every command the documentation shows plans, and every config file plans with every
profile, from the repository root of a fresh clone.

Documented commands: README.md and docs/*.md, in fenced blocks and in inline code (tables
included), `\\` continuations joined. Each `snakemake` command is dry-run (`-n` added) as
typed; each `make X` is checked with `make -n X` and every snakemake command it prints is
dry-run too. A command is skipped only with `<!-- no-plan: reason -->` directly above it
(above the opening fence for a fenced block, right before the code span inline); the skipped
ones are printed. Where a command names files the docs tell the user to write (my.yaml, the
rehearsal's mirror.yaml) the test writes stand-ins; ImageNet and Feldman & Zhang commands
find fake data layouts at the configs' paths. `--profile profiles/slurm` plans with the
shipped profile less its Apptainer keys (software-deployment-method, apptainer-args: no
Apptainer here; a dry run of the real profile stops at that check, tests/test_slurm.py).
A `--report FILE` command reports the run of the same command without it: that run's plan
is what is checked (the report itself needs finished results, tests/test_workflow.py).

Config x profile: every file of config/ with profiles/local, the SLURM profile above and no
profile, from scratch (empty results) and with the prepared data and masks present (the
`prep` group done; their checkpoint outputs written with the config's own sizes), each an
exact job set by rule, the same for every profile.

All dry runs of this module run up front in a pool of 2 processes.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from _util import dry_runs_in_forks, fresh_clone, planned_jobs, subprocess_env

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NO_PLAN = r"<!--\s*no-plan:\s*(?P<reason>(?:(?!-->)[\s\S])*?)\s*-->"
CONFIGS = sorted(p.name for p in (REPO / "config").glob("*.yaml") if p.name != "schema.yaml")
PROFILES = ["profiles/local", "profiles/slurm", None]


# ---------------------------------------------------------------- commands of the docs


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    words: tuple[str, ...]
    skip: str | None  # the no-plan reason


def _command_words(text: str) -> tuple[str, ...] | None:
    """The words of a snakemake or make command (comments dropped), else None."""
    text = re.sub(r"^\s*\$\s+", "", text)
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    if words and words[0] in ("snakemake", "make"):
        return tuple(words)
    return None


def doc_commands(path: Path) -> list[DocCommand]:
    """The snakemake and make commands of one Markdown file."""
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    lines = path.read_text().splitlines()
    found = []
    prose = []  # the file with fenced blocks blanked (line numbers kept)
    fence, fence_skip, i = None, None, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if fence is None and m:
            fence = m.group(1)
            above = re.fullmatch(r"\s*" + NO_PLAN + r"\s*", lines[i - 1]) if i else None
            fence_skip = above.group("reason") if above else None
            prose.append("")
        elif fence is not None and line.strip().startswith(fence):
            fence = None
            prose.append("")
        elif fence is not None:
            start, text = i, line
            while text.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i].strip()
                prose.append("")
            words = _command_words(text)
            if words:
                found.append(DocCommand(f"{rel}:{start + 1}", words, fence_skip))
            prose.append("")
        else:
            prose.append(line)
        i += 1
    text = "\n".join(prose)
    for m in re.finditer(r"(?<!`)`(?!`)([^`]+)`", text):
        code = m.group(1)
        if re.search(r"\n\s*\n", code):
            continue  # not a code span: a stray backtick
        words = _command_words(code.replace("\n", " "))
        if words:
            before = re.search(NO_PLAN + r"\s*$", text[: m.start()])
            line = text.count("\n", 0, m.start()) + 1
            found.append(
                DocCommand(f"{rel}:{line}", words, before.group("reason") if before else None)
            )
    return found


ALL_DOC_COMMANDS = [c for p in DOCS for c in doc_commands(p)]


def _unique(kind: str, skipped: bool) -> dict[tuple[str, ...], list[str]]:
    out: dict[tuple[str, ...], list[str]] = {}
    for c in ALL_DOC_COMMANDS:
        if c.words[0] == kind and (c.skip is not None) == skipped:
            out.setdefault(c.words, []).append(c.where)
    return out


SNAKEMAKE_DOCS = _unique("snakemake", skipped=False)
MAKE_DOCS = _unique("make", skipped=False)


def snakemake_dry_run(words: tuple[str, ...]) -> tuple[str, ...]:
    """A documented snakemake command as this test dry-runs it (module docstring)."""
    args = list(words[1:])
    if "--report" in args:
        k = args.index("--report")
        del args[k : k + 2]
    args = [a for a in args if a not in ("-n", "--dry-run", "--dryrun")]
    return ("snakemake", "-n", *args)


# ---------------------------------------------------------------- the fresh clone


def write_layouts(root: Path) -> None:
    """Fake ImageNet and Feldman & Zhang release at config/imagenet*.yaml's paths: one
    class of two images in train/ and val/; the release's 55 run folders (a checkpoints/
    folder and aux_arrays.npz each) and imagenet_index.npz. Planning reads none of them."""
    from PIL import Image

    inet = yaml.safe_load((REPO / "config" / "imagenet-fz.yaml").read_text())
    for split in ("train", "val"):
        d = root / inet["data"]["path"] / split / "n01440764"
        d.mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (8, 8)).save(d / f"{split}_{k}.JPEG")
    fz = inet["fz"]
    for run in fz["runs"]:
        d = root / fz["root"] / str(run)
        (d / "checkpoints").mkdir(parents=True)
        np.savez(d / "aux_arrays.npz", subsample_idx=np.arange(1))
    np.savez(root / fz["index"], tr_filenames=np.array([b"train_0.JPEG"]))
    assert (
        yaml.safe_load((REPO / "config" / "imagenet.yaml").read_text())["data"]["path"]
        == (inet["data"]["path"])
    )


def planning_profile(root: Path) -> None:
    """profiles/slurm in the clone: the shipped profile less its Apptainer keys."""
    path = root / "profiles" / "slurm" / "config.yaml"
    profile = yaml.safe_load(path.read_text())
    assert profile.pop("software-deployment-method") == ["apptainer"]
    profile.pop("apptainer-args")
    path.write_text(yaml.safe_dump(profile))


def stand_ins(root: Path) -> None:
    """Files the docs have the user write: my.yaml (README: your own experiment, here the
    default one under another name) and docs/cluster.md's rehearsal mirror.yaml, after its
    own first line (`python tests/_cifar.py DIR` prints the synthetic archive's md5)."""
    own = yaml.safe_load((root / "config" / "config.yaml").read_text())
    own["experiment"] = "my"
    (root / "my.yaml").write_text(yaml.safe_dump(own))
    out = subprocess.run(
        [sys.executable, "tests/_cifar.py", str(root / "rehearsal-mirror")],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    md5 = re.search(r"md5 ([0-9a-f]{32})", out).group(1)
    (root / "mirror.yaml").write_text(
        f"data:\n  mirror: {root / 'rehearsal-mirror'}\n  md5: {md5}\n"
    )


def prep_done(root: Path, name: str) -> None:
    """The state after the `prep` group of config/`name`: the prepared data (its manifest
    with the population size, empty arrays), the CIFAR archive, Feldman & Zhang's
    membership outputs and masks.npz of the config's shape, written in that order."""
    from curvmia.cifar import CIFAR, raw_archive_path
    from curvmia.data import prepared_dir_name
    from curvmia.io import save_npz
    from curvmia.masks import make_masks

    cfg = yaml.safe_load((root / "config" / name).read_text())
    data, masks = cfg["data"], cfg["masks"]
    prepared = root / data["root"] / prepared_dir_name(data)
    n = 100
    if data["dataset"] in CIFAR:
        archive = root / raw_archive_path(data)
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.touch()
    if not prepared.exists():  # imagenet and imagenet-fz share theirs: written once
        prepared.mkdir(parents=True)
        for f in ("train_images", "train_labels", "test_images", "test_labels"):
            (prepared / f"{f}.npy").touch()
        (prepared / "manifest.json").write_text(json.dumps({"n_train": n, "n_test": 20}))
    results = root / "results" / cfg["experiment"]
    results.mkdir(parents=True)
    if cfg.get("fz"):
        for f in ("membership.npy", "order.npy", "order_test.npy", "membership.json"):
            (results / "fz").mkdir(exist_ok=True)
            (results / "fz" / f).touch()
    rows = make_masks(n, masks["n_random"], masks["pkeep"], masks["seed"], masks["complements"])
    save_npz(results / "masks.npz", masks=rows)


def matrix_cmd(name: str, profile: str | None) -> tuple[str, ...]:
    """The plan of config/`name` with `profile`; the default config as users run it, without
    --configfile (the same commands as the docs' give one dry run)."""
    return (
        "snakemake",
        "-n",
        *(["--profile", profile] if profile else []),
        *(["--configfile", f"config/{name}"] if name != "config.yaml" else []),
    )


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Every dry run of this module, run up front in a pool of 2 processes:
    {"make": {words: (rc, out, [snakemake words])}, "doc"/"scratch"/"prep": {words: (rc, out)}}.
    """
    base = tmp_path_factory.mktemp("documented")
    clone = fresh_clone(base / "curvmia")
    done = fresh_clone(base / "curvmia-prep-done")
    for root in (clone, done):
        write_layouts(root)
        planning_profile(root)
    stand_ins(clone)
    for name in CONFIGS:
        prep_done(done, name)

    env = {**subprocess_env(), "PYTHONPATH": str(clone)}
    makes = {}
    for words in MAKE_DOCS:
        proc = subprocess.run(
            ["make", "-n", *words[1:]], cwd=clone, capture_output=True, text=True, env=env
        )
        printed = []
        for line in proc.stdout.splitlines():
            w = _command_words(re.sub(r"^\S*/snakemake\b", "snakemake", line.strip()))
            if w and w[0] == "snakemake":
                printed.append(w)
        makes[words] = (proc.returncode, proc.stdout + proc.stderr, printed)
    doc = {snakemake_dry_run(w) for w in SNAKEMAKE_DOCS}
    doc |= {snakemake_dry_run(w) for _, _, p in makes.values() for w in p}
    scratch = {matrix_cmd(n, p) for n in CONFIGS for p in PROFILES}
    jobs = [(w, clone) for w in sorted(doc | scratch)] + [(w, done) for w in sorted(scratch)]
    results = dry_runs_in_forks([(w[1:], d) for w, d in jobs], workers=2)
    runs = dict(zip(((w, d == done) for w, d in jobs), results))
    return {
        "make": makes,
        "doc": {w: runs[(w, False)] for w in doc},
        "scratch": {w: runs[(w, False)] for w in scratch},
        "prep": {w: runs[(w, True)] for w in scratch},
    }


# ---------------------------------------------------------------- the tests


def test_the_docs_have_commands_and_every_skip_gives_a_reason(capsys):
    """The parser finds the documented commands (continuations and tables included); the
    skipped ones are listed with their reasons."""
    where = {c.where: c.words for c in ALL_DOC_COMMANDS}
    assert any(w.startswith("README.md:") for w in MAKE_DOCS[("make", "run")])
    # a table cell and a fenced command continued over two lines
    assert any(
        w[:3] == ("snakemake", "--configfile", "config/imagenet.yaml") for w in where.values()
    )
    assert any("config/presets/rehearsal.yaml" in w for w in where.values())
    skipped = [c for c in ALL_DOC_COMMANDS if c.skip is not None]
    with capsys.disabled():
        print(f"\n{len(ALL_DOC_COMMANDS)} documented commands, {len(skipped)} not planned:")
        for c in skipped:
            print(f"  {c.where}: {shlex.join(c.words)}  (no-plan: {c.skip})")
    assert all(c.skip for c in skipped)


def test_parser_on_every_form(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        "Run `snakemake -n` or `make\nrun`; `ls` is no command.\n\n"
        "<!-- no-plan: needs a GPU -->\n"
        "```bash\n$ snakemake --cores 1 \\\n    all   # the default\nls\n```\n\n"
        "```bash\nmake test TEST_WORKERS=0  # here\n```\n\n"
        "| a | <!-- no-plan: A.yaml is\nany file --> `snakemake --configfile A.yaml` |\n"
    )
    assert doc_commands(md) == [
        DocCommand("x.md:6", ("snakemake", "--cores", "1", "all"), "needs a GPU"),
        DocCommand("x.md:12", ("make", "test", "TEST_WORKERS=0"), None),
        DocCommand("x.md:1", ("snakemake", "-n"), None),
        DocCommand("x.md:1", ("make", "run"), None),
        DocCommand("x.md:16", ("snakemake", "--configfile", "A.yaml"), "A.yaml is\nany file"),
    ]
    assert snakemake_dry_run(("snakemake", "--report", "r.html", "--cores", "1", "-n")) == (
        "snakemake",
        "-n",
        "--cores",
        "1",
    )


@pytest.mark.parametrize("words", sorted(SNAKEMAKE_DOCS), ids=shlex.join)
def test_documented_snakemake_command_plans(planned, words):
    rc, out = planned["doc"][snakemake_dry_run(words)]
    where = ", ".join(SNAKEMAKE_DOCS[words])
    assert rc == 0, f"{where}: {shlex.join(words)}\n{out[-4000:]}"
    assert "Job stats" in out or "Nothing to be done" in out or "--lint" in words, out[-2000:]


@pytest.mark.parametrize("words", sorted(MAKE_DOCS), ids=shlex.join)
def test_documented_make_command_and_its_snakemake_commands_plan(planned, words):
    rc, out, printed = planned["make"][words]
    where = ", ".join(MAKE_DOCS[words])
    assert rc == 0, f"{where}: make -n {shlex.join(words[1:])}\n{out[-3000:]}"
    for w in printed:
        rc, out = planned["doc"][snakemake_dry_run(w)]
        assert rc == 0, f"{where}: {shlex.join(words)} runs {shlex.join(w)}\n{out[-4000:]}"


# Planned jobs by rule, written from each config: masks.n_random models (every one trained,
# or imported for imagenet-fz after its conversion: export, convert, check per model),
# scoring per model (scoring.shards jobs and a merge where shards > 1), one attack job per
# entry of `attacks` (20 in the digits and CIFAR configs, 17 in imagenet, 16 in imagenet-fz,
# which lacks carlini_paper), the report steps, and the sweeps rule all runs (theory.sweeps: the
# digits default's dp with dp_sweep.epsilons x seeds targets, size with sizes x seeds).
REPORT = {"model_summary": 1, "health": 1, "metrics": 1, "per_example": 1, "curv_hist": 1}
REPORT |= {"realistic": 1}
REPORT |= {"theory": 1, "loo": 1, "budget": 1, "provenance": 1, "one_run": 1, "all": 1}
PREP = {"prepare_data": 1, "make_masks": 1}
DIGITS_SWEEPS = {"dp_members": 1, "size_members": 2, "train_sweep": 3 * 1 + 2 * 2}
DIGITS_SWEEPS |= {"score_sweep": 7, "sweep_metrics": 2, "theory_sweep": 2, "one_run_sweep": 1}
AFTER_PREP = {
    "config.yaml": {"train": 20, "score": 20, "attack": 20, **REPORT, **DIGITS_SWEEPS},
    "cifar10.yaml": {"train": 67, "score": 67, "attack": 20, **REPORT},
    "cifar100.yaml": {"train": 67, "score": 67, "attack": 20, **REPORT},
    "imagenet.yaml": {"train": 55, "score_shard": 55 * 8, "score_merge": 55, "attack": 17},
    "imagenet-fz.yaml": {"fz_export": 55, "fz_convert": 55, "fz_check": 55, "import_model": 55},
}
AFTER_PREP["imagenet.yaml"] |= REPORT
AFTER_PREP["imagenet-fz.yaml"] |= {"score_shard": 55 * 8, "score_merge": 55, "attack": 16}
AFTER_PREP["imagenet-fz.yaml"] |= REPORT
FROM_SCRATCH = {name: {**jobs, **PREP} for name, jobs in AFTER_PREP.items()}
FROM_SCRATCH["cifar10.yaml"]["download_data"] = 1
FROM_SCRATCH["cifar100.yaml"]["download_data"] = 1
FROM_SCRATCH["imagenet-fz.yaml"]["fz_membership"] = 1


@pytest.mark.parametrize("profile", PROFILES, ids=str)
@pytest.mark.parametrize("name", CONFIGS)
def test_config_plans_from_scratch(planned, name, profile):
    rc, out = planned["scratch"][matrix_cmd(name, profile)]
    assert rc == 0, out[-4000:]
    # the workflow profile, with its job groups, is read in every case
    used = f"Using profiles {profile} and workflow" if profile else "Using workflow"
    assert f"{used} specific profile profiles/default" in out, out[:2000]
    assert planned_jobs(out) == FROM_SCRATCH[name]


@pytest.mark.parametrize("profile", PROFILES, ids=str)
@pytest.mark.parametrize("name", CONFIGS)
def test_config_plans_with_prepared_data_and_masks(planned, name, profile):
    rc, out = planned["prep"][matrix_cmd(name, profile)]
    assert rc == 0, out[-4000:]
    assert planned_jobs(out) == AFTER_PREP[name]


def test_every_config_file_is_planned():
    assert CONFIGS == [
        "cifar10.yaml",
        "cifar100.yaml",
        "config.yaml",
        "imagenet-fz.yaml",
        "imagenet.yaml",
    ]
    assert set(AFTER_PREP) == set(CONFIGS)
    assert shutil.which("make"), "make is needed to check the documented make commands"
