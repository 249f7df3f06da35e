"""What each job of a shipped config requests from a cluster (the table of docs/cluster.md).

Torch-free. Each config is planned in this process through Snakemake's API, the way
``snakemake --profile profiles/slurm`` submits it: the SLURM executor's settings (no core
limit, ``jobs`` parallel jobs from profiles/slurm) with the workflow profile profiles/default
(job groups, ``group-components``, global ``resources``), dry-run so nothing is submitted.

A rule's row is what each of its jobs declares (threads, ``mem_mb``, ``runtime``, ``gpu``).
A group's row is the one sbatch job the group becomes: Snakemake's own
``GroupResources.basic_layered`` packs the steps of each toposort level into layers that fit
the global resources (``cpu_steps=4``: at most 4 CPU steps side by side), sums the CPUs,
memory and GPUs within a layer, takes the largest layer, and adds the layers' run times up.
(A plain ``snakemake -n`` plans with one core and so shows other group numbers.)
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import yaml

REPO = Path(__file__).resolve().parents[1]
DOC = Path("docs") / "cluster.md"
BEGIN, END = "<!-- resources:begin -->", "<!-- resources:end -->"
# column -> config file (config/); the targets every plan asks for
CONFIGS = {
    "digits": "config.yaml",
    "cifar10": "cifar10.yaml",
    "cifar100": "cifar100.yaml",
    "imagenet": "imagenet.yaml",
}
TARGETS = ("all", "dp_sweep", "size_sweep")
# a fake ImageFolder tree passes the layout check of the ImageNet configs before any job
FAKE_IMAGEFOLDER = {"imagenet": "ILSVRC2012/train/n01440764/a.JPEG"}


def cell(cpus: int, mem_mb: int, runtime: int, gpus: int) -> str:
    """One table cell: ``CPUs · mem_mb · runtime minutes · GPUs``."""
    return f"{cpus} · {mem_mb} · {runtime} · {gpus}"


def group_request(
    levels: Sequence[Sequence[Mapping[str, int | str]]], constraints: Mapping[str, int | None]
) -> dict[str, int]:
    """The request of one group job whose steps declare `levels` (the resources of each step,
    by toposort level; threads as ``_cores``) under the global `constraints` (e.g.
    ``{"cpu_steps": 4, "_cores": None}``), computed by Snakemake as a submitted group job:
    {"cpus", "mem_mb", "runtime", "gpu"}."""
    from snakemake.resources import GroupResources, Resources

    jobs = [[SimpleNamespace(resources=dict(r), pipe_group=None) for r in lv] for lv in levels]
    res = GroupResources.basic_layered(
        toposorted_jobs=jobs,
        constraints=Resources.from_mapping(dict(constraints)),
        run_local=False,
        additive_resources=["runtime"],
        sortby=["runtime"],
    )
    return {k: int(res.get(r, 0)) for k, r in _COLUMNS.items()}


_COLUMNS = {"cpus": "_cores", "mem_mb": "mem_mb", "runtime": "runtime", "gpu": "gpu"}
# what a rule's jobs declare (rules/resources.smk: job_resources) and the table shows
_DECLARED = {"mem_mb", "runtime", "gpu", "cpu_steps"}


def profile_settings(repo: Path = REPO) -> dict:
    """What a SLURM submission takes from the profiles: groups, group components and global
    resources (profiles/default, the workflow profile), parallel jobs (profiles/slurm)."""
    wf = yaml.safe_load((repo / "profiles" / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    resources = {}
    for item in wf.get("resources") or []:
        name, _, value = str(item).partition("=")
        resources[name.strip()] = int(value)
    return {
        "groups": dict(wf.get("groups") or {}),
        "group_components": {k: int(v) for k, v in (wf.get("group-components") or {}).items()},
        "resources": resources,
        "jobs": int(slurm["jobs"]),
    }


def plan(configfiles: Sequence[Path], workdir: Path, repo: Path = REPO) -> dict:
    """Plan `TARGETS` for `configfiles` in `workdir` as a SLURM submission would (dry run).

    Returns {"rules": {rule: resources of its jobs}, "groups": {group: [request of each
    group job]}}; a rule whose jobs declare different resources is an error."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        GroupSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
        WorkflowSettings,
    )

    prof = profile_settings(repo)
    quiet = OutputSettings(quiet={Quietness.ALL}, enable_file_logging=False)
    handlers, cwd = list(logging.getLogger().handlers), os.getcwd()
    try:
        with SnakemakeApi(quiet) as api:
            wf_api = api.workflow(
                resource_settings=ResourceSettings(nodes=prof["jobs"], resources=prof["resources"]),
                config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles]),
                workflow_settings=WorkflowSettings(),
                snakefile=repo / "Snakefile",
                workdir=workdir,
            )
            dag_api = wf_api.dag(DAGSettings(targets=set(TARGETS)))
            dag_api.execute_workflow(
                executor="slurm",
                pseudo_executor="dryrun",
                group_settings=GroupSettings(
                    overwrite_groups=prof["groups"], group_components=prof["group_components"]
                ),
            )
            workflow = wf_api._workflow
            constraints = {
                name: workflow.global_resources[name].value
                for name in workflow.global_resources.keys()
            }
            return _requests(workflow.dag, constraints)
    finally:  # the API leaves handlers on the root logger, and may leave the workdir
        os.chdir(cwd)
        for h in list(logging.getLogger().handlers):
            if h not in handlers:
                logging.getLogger().removeHandler(h)


def _requests(dag, constraints: Mapping[str, int | None]) -> dict:
    rules: dict[str, dict] = {}
    for job in dag.jobs:  # (after the dry run: every job is finished, none needs to run)
        if job.rule.name in TARGETS:
            continue
        res = {k: v for k, v in job.resources.items() if k in _DECLARED}
        res["_cores"] = job.threads
        seen = rules.setdefault(job.rule.name, res)
        if seen != res:
            raise ValueError(f"rule {job.rule.name}: jobs request {seen} and {res}")
    groups: dict[str, list[dict]] = {}
    for group in {id(g): g for g in dag._group.values()}.values():
        levels = [[_step(j) for j in level] for level in group.toposorted]
        req = group_request(levels, constraints)
        groups.setdefault(group.groupid, []).append({**req, "steps": len(group.jobs)})
    for jobs in groups.values():
        jobs.sort(key=lambda g: (-g["steps"], -g["runtime"]))
    return {"rules": rules, "groups": groups}


def _step(job) -> dict:
    return {k: v for k, v in job.resources.items() if not isinstance(v, str)}


def plan_config(name: str, tmp: Path, repo: Path = REPO) -> dict:
    """Plan shipped config `name` (a key of CONFIGS) from scratch in the empty folder `tmp`."""
    workdir = Path(tmp) / name
    workdir.mkdir(parents=True)
    configfiles = [repo / "config" / CONFIGS[name]]
    if name in FAKE_IMAGEFOLDER:
        img = workdir / FAKE_IMAGEFOLDER[name]
        img.parent.mkdir(parents=True)
        img.write_bytes(b"")
        overlay = workdir / "data_path.yaml"
        overlay.write_text(yaml.safe_dump({"data": {"path": str(img.parents[2])}}))
        configfiles.append(overlay)
    return plan(configfiles, workdir, repo)


def table(plans: Mapping[str, dict]) -> str:
    """The markdown table: one row per rule, then one per group job, one column per config."""
    names = list(plans)
    lines = ["| rule | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    rules = sorted(set().union(*(p["rules"] for p in plans.values())))
    for rule in rules:
        cells = []
        for name in names:
            r = plans[name]["rules"].get(rule)
            cells.append(
                "—" if r is None else cell(r["_cores"], r["mem_mb"], r["runtime"], r.get("gpu", 0))
            )
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    groups = sorted(set().union(*(p["groups"] for p in plans.values())))
    for group in groups:
        cells = []
        for name in names:
            jobs = plans[name]["groups"].get(group, [])
            cells.append(
                " + ".join(
                    cell(g["cpus"], g["mem_mb"], g["runtime"], g["gpu"]) + f" ({g['steps']} steps)"
                    for g in jobs
                )
                or "—"
            )
        lines.append(f"| group `{group}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(doc_text: str, table_text: str) -> str:
    """`doc_text` with the table between the resources markers replaced by `table_text`."""
    if doc_text.count(BEGIN) != 1 or doc_text.count(END) != 1:
        raise ValueError(f"{DOC}: expected one {BEGIN} and one {END}")
    head, rest = doc_text.split(BEGIN)
    return f"{head}{BEGIN}\n{table_text}\n{END}{rest.split(END)[1]}"


def plan_all(names: Iterable[str] = CONFIGS, repo: Path = REPO) -> dict[str, dict]:
    """{config: plan} for the shipped configs `names`, each from scratch in a temporary
    folder."""
    with tempfile.TemporaryDirectory(prefix="curvmia-requests-") as tmp:
        return {name: plan_config(name, Path(tmp), repo) for name in names}


def generate(names: Iterable[str] = CONFIGS, repo: Path = REPO) -> str:
    """The table of docs/cluster.md for the configs `names`."""
    return table(plan_all(names, repo))
