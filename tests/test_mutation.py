"""The fixed, seeded sample of mutants of the core modules (tests/_mutation.py,
docs/testing.md): every one must be killed by the fast tests of its module.  The records of
the last whole-module runs (tests/mutation_records.json) and the table generated from them."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_sampled_mutants_of_the_core_modules_are_killed():
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mutmut is not installed (envs/requirements-dev.txt; `make test` does it)")
        pytest.skip("mutmut not installed: pip install -r envs/requirements-dev.txt")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_mutation.py"), "ci"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    report = [line for line in proc.stdout.splitlines() if not line.startswith(("⠋", "⠙"))]
    assert proc.returncode == 0, "\n".join(report[-60:]) + proc.stderr[-3000:]
    assert "mutation score 100.0%" in proc.stdout


def _mutation_module():
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import _mutation
    finally:
        sys.path.pop(0)
    return _mutation


def test_every_equivalent_mutant_is_argued_in_the_docs():
    """Each mutant excluded as equivalent has its one-line argument in EQUIVALENT (the
    function, then why), docs/testing.md says that the arguments live there, and every mutant
    a module's record counts as equivalent is one of them."""
    _mutation = _mutation_module()
    doc = (REPO / "docs" / "testing.md").read_text()
    assert "The arguments live in `EQUIVALENT` in `tests/_mutation.py`" in doc
    assert len(_mutation.EQUIVALENT) > 250  # the triage rounds argued about 300
    for digest, why in _mutation.EQUIVALENT.items():
        assert len(digest) == 12 and set(digest) <= set("0123456789abcdef"), digest
        func, _, reason = why.partition(": ")
        assert func and " " not in func and len(reason) > 10, (digest, why)
    records = _mutation.load_records()
    unargued = {
        m: [d for d in r["equivalent"] if d not in _mutation.EQUIVALENT] for m, r in records.items()
    }
    unargued = {m: ds for m, ds in unargued.items() if ds}
    assert not unargued, (
        f"counted equivalent in tests/mutation_records.json, not argued in EQUIVALENT: "
        f"{unargued}; argue them, or rerun the module (make mutate MODULE=M)"
    )


def test_records_are_whole_measurements_of_the_core_modules():
    _mutation = _mutation_module()
    records = _mutation.load_records()
    assert set(records) <= set(_mutation.MODULES), (
        f"records of modules not in MODULES: {set(records) - set(_mutation.MODULES)}"
    )
    assert len(records) >= 5, records.keys()
    for module, r in records.items():
        counted = r["killed"] + len(r["equivalent"]) + len(r["survived"])
        assert counted == r["mutants"] > 0, (module, counted, r["mutants"])
        assert re.fullmatch(r"20\d\d-\d\d-\d\d", r["date"]), (module, r["date"])
        assert r["machine"] and r["commit"], module
        assert r["command"].startswith("python tests/_mutation.py run --module " + module)
        for u in r.get("untouched", []):
            assert 0 <= u["killed"] <= u["of"] <= r["mutants"], (module, u)


def test_module_table_is_generated_from_the_records():
    _mutation = _mutation_module()
    page = (REPO / "docs" / "testing.md").read_text(encoding="utf-8")
    generated = _mutation.table(_mutation.load_records())
    assert _mutation.render(page, generated) == page, (
        f"docs/testing.md is stale: run `make docs`; the records give:\n{generated}"
    )
    assert "| metrics | 637 | 593 | 44 | 0 | 100.0% (593/593) |" in page


def test_a_whole_module_run_writes_its_record(tmp_path, monkeypatch):
    _mutation = _mutation_module()
    path = tmp_path / "records.json"
    path.write_text(
        '{"masks": {"mutants": 1, "untouched": [{"killed": 3, "of": 4, "note": "places 0–3"}]}}'
    )
    monkeypatch.setattr(sys, "argv", ["tests/_mutation.py", "run", "--module", "masks"])
    _mutation.save_record("masks", 10, 6, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"], ["cccccccccccc"], path)
    _mutation.save_record("curvature", 5, 5, [], [], path)
    text = path.read_text(encoding="utf-8")
    assert '"equivalent": ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]' in text  # one line, sorted
    records = _mutation.load_records(path)
    assert list(records) == ["curvature", "masks"]  # in the order of MODULES
    r = records["masks"]
    assert (r["mutants"], r["killed"], r["survived"]) == (10, 6, ["cccccccccccc"])
    assert r["untouched"] == [{"killed": 3, "of": 4, "note": "places 0–3"}]  # kept
    assert r["command"] == "python tests/_mutation.py run --module masks"
    assert re.fullmatch(r"[0-9a-f]{7,}(-dirty)?", r["commit"]) and "CPUs" in r["machine"]
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", r["date"])
    table = _mutation.table(records)
    row = f"| masks | 10 | 6 | 2 | 1 | 75.0% (6/8) | 75.0% (3/4), places 0–3 | {r['date']}, "
    assert row in table and "| curvature | 5 | 5 | 0 | 0 | 100.0% (5/5) | – |" in table
    assert "| metrics | not measured: `make mutate MODULE=metrics` |" in table
    page = f"# T\n{_mutation.BEGIN}\nold\n{_mutation.END}\ntail\n"
    assert (
        _mutation.render(page, table) == f"# T\n{_mutation.BEGIN}\n{table}{_mutation.END}\ntail\n"
    )


def test_only_a_run_over_every_mutant_writes_the_record(tmp_path, monkeypatch):
    _mutation = _mutation_module()
    names = {"masks": [(f"{i:02x}" * 6 + "ff", f"curvmia.masks.x_f__mutmut_{i}") for i in range(4)]}
    codes = {"curvmia.masks.x_f__mutmut_0": 1, "curvmia.masks.x_f__mutmut_1": 0}
    codes |= {"curvmia.masks.x_f__mutmut_2": 0, "curvmia.masks.x_f__mutmut_3": 24}
    monkeypatch.setattr(_mutation, "RECORDS", tmp_path / "records.json")
    monkeypatch.setattr(_mutation, "generate", lambda: None)
    monkeypatch.setattr(_mutation, "mutants", lambda m: names[m])
    monkeypatch.setattr(_mutation, "results", lambda m: codes)
    monkeypatch.setattr(_mutation, "mutmut", lambda *a, check: subprocess.CompletedProcess(a, 0))
    monkeypatch.setitem(_mutation.EQUIVALENT, "010101010101", "f: argued for this test only")
    assert _mutation.run(["masks"], 2) == 0  # a sample: mutant 0 killed, 1 equivalent
    assert not (tmp_path / "records.json").exists()
    assert _mutation.run(["masks"], None, start=1) == 1  # from place 1 on: not whole
    assert not (tmp_path / "records.json").exists()
    assert _mutation.run(["masks"], None) == 1  # every mutant; mutant 2 survived
    r = _mutation.load_records()["masks"]
    assert (r["mutants"], r["killed"]) == (4, 2)  # 0 killed, 3 timed out
    assert r["equivalent"] == ["010101010101"] and r["survived"] == ["020202020202"]
