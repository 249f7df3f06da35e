"""The request of one group job (curvmia/cluster_requests.py: group_request), on hand-made
steps: steps of a toposort level side by side up to the `cpu_steps` cap, the layers' run
times added up, CPUs and memory of the widest layer."""

import pytest

from curvmia.cluster_requests import group_request


def step(minutes: int, cores: int = 1, mem_mb: int = 1000, **extra: int) -> dict:
    return {"_cores": cores, "mem_mb": mem_mb, "runtime": minutes, "cpu_steps": 1, **extra}


def test_six_one_cpu_steps_capped_at_four_take_two_layers():
    got = group_request([[step(10) for _ in range(6)]], {"cpu_steps": 4, "_cores": None})
    assert got == {"cpus": 4, "mem_mb": 4000, "runtime": 20, "gpu": 0}


def test_without_a_cap_every_step_of_a_level_runs_side_by_side():
    got = group_request([[step(10) for _ in range(6)]], {"_cores": None})
    assert got == {"cpus": 6, "mem_mb": 6000, "runtime": 10, "gpu": 0}


def test_levels_run_one_after_the_other():
    # a 16-CPU preparation of 24 h, then 3 mask steps of an hour: 2 layers
    levels = [[step(1440, cores=16, mem_mb=64000)], [step(60, mem_mb=16000) for _ in range(3)]]
    got = group_request(levels, {"cpu_steps": 4, "_cores": None})
    assert got == {"cpus": 16, "mem_mb": 64000, "runtime": 1500, "gpu": 0}


def test_nine_steps_capped_at_four_take_three_layers_whatever_the_core_limit():
    levels = [[step(60, mem_mb=16000) for _ in range(9)]]
    for cores in (None, 1024):
        got = group_request(levels, {"cpu_steps": 4, "_cores": cores})
        assert got == {"cpus": 4, "mem_mb": 64000, "runtime": 180, "gpu": 0}, cores
    # one core (what a plain dry run plans with): one step at a time
    got = group_request(levels, {"cpu_steps": 4, "_cores": 1})
    assert got == {"cpus": 1, "mem_mb": 16000, "runtime": 540, "gpu": 0}


def test_render_replaces_only_the_table_between_the_markers():
    from curvmia.cluster_requests import BEGIN, END, render

    page = f"intro\n{BEGIN}\n| stale |\n{END}\n\nmore text\n"
    assert render(page, "| new |") == f"intro\n{BEGIN}\n| new |\n{END}\n\nmore text\n"
    assert render(render(page, "| new |"), "| new |") == render(page, "| new |")
    with pytest.raises(ValueError, match="docs/cluster.md: expected one"):
        render("no markers", "| new |")
