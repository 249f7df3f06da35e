"""The documentation a newcomer reads: a short README, no reference to the out-of-repository
spec, relative links that resolve, and a configuration page that matches the schema."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from curvmia.schema_doc import render_file

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces → -."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines; move material into docs/"


def test_testing_page_is_a_reference_not_a_diary():
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    n = len(text.splitlines())
    assert n <= 200, f"docs/testing.md has {n} lines; history belongs in git"
    rounds = re.findall(r"^#+ .*\bround\b.*$", text, flags=re.M | re.I)
    assert not rounds, rounds


def test_user_facing_files_never_cite_the_out_of_repository_spec():
    files = [
        *PAGES,
        *(ROOT / "report").glob("*.rst"),
        *(ROOT / "config").rglob("*.yaml"),
        *(ROOT / "scripts").glob("*.py"),
        *(p for p in (ROOT / "profiles").rglob("*") if p.is_file()),
    ]
    bad = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in files
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"SPEC\.md|SPEC §|shared/SPEC", line)
    ]
    assert len(files) > 40 and not bad, bad


def test_every_relative_link_resolves():
    broken, n = [], 0
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            n += 1
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert n > 30 and not broken, broken


def test_link_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Top\n[a](missing.md) [b](#top) [c](#nowhere)\n", encoding="utf-8")
    assert LINK.findall(page.read_text()) == ["missing.md", "#top", "#nowhere"]
    assert _anchors(page) == {"top"}
    assert _slug("Estimators (per-sample features)") == "estimators-per-sample-features"


def test_configuration_page_is_generated_from_the_schema():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == render_file(ROOT / "config" / "schema.yaml"), "run `make docs`"
    # every key of the schema has its row, with its default
    assert "| `scoring.niter` | integer | `10` |" in page
    assert "| `attacks[].variant` |" in page and "| `dp_sweep.train.epochs` |" in page


def test_stale_configuration_page_is_reported(tmp_path):
    schema = (ROOT / "config" / "schema.yaml").read_text(encoding="utf-8")
    (tmp_path / "schema.yaml").write_text(
        schema.replace("Rademacher iterations of the zero-order curvature", "CHANGED"),
        encoding="utf-8",
    )
    out = tmp_path / "configuration.md"
    out.write_text((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"))
    script = [sys.executable, "scripts/schema_doc.py", "--schema", str(tmp_path / "schema.yaml")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [*script, "--out", str(out), "--check"], cwd=ROOT, env=env, text=True, capture_output=True
    )
    assert r.returncode == 1 and "stale" in r.stderr
    subprocess.run([*script, "--out", str(out)], cwd=ROOT, env=env, check=True)
    assert "CHANGED" in out.read_text(encoding="utf-8")
    r = subprocess.run([*script, "--out", str(out), "--check"], cwd=ROOT, env=env)
    assert r.returncode == 0


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_results_table_states_date_machine_and_command(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    block = text.split("<!-- results-table:start -->")[1].split("<!-- results-table:end -->")[0]
    assert re.search(r"20\d\d-\d\d-\d\d", block) and "machine" in block and "`" in block
    assert "| Curv NLL |" in block
