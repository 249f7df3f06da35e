"""The Snakemake report as a reader meets it, in a real browser (headless Chromium): the first
result category is the headline, whose table holds the Table 1 rows; the ROC image renders;
the console shows no script error. Fails rather than skips under CI=true."""

import os
import re
import shutil
import subprocess

import pytest
from _browser import Browser, find_chromium
from _util import snakemake_cmd, subprocess_env
from conftest import TEST_CONFIG

CLICK = """(() => {{
  const hits = [...document.querySelectorAll('a, button, li, span, div, td')]
    .filter(e => e.textContent.trim() === {text!r} && e.offsetParent !== null);
  if (!hits.length) return false;
  hits[hits.length - 1].click();
  return true;
}})()"""
# a result's "view" button: the first button of the row that names the file
VIEW = """(() => {{
  const row = [...document.querySelectorAll('tr')]
    .find(r => r.cells.length && r.cells[0].textContent.trim().endsWith({name!r}));
  const button = row && row.querySelector('[role=group] a');
  if (!button) return false;
  button.click();
  return true;
}})()"""


def test_report_leads_with_the_headline_and_renders_in_chromium(test_config_run, tmp_path):
    binary = find_chromium(install=os.environ.get("CI") == "true" or os.geteuid() == 0)
    if binary is None:
        msg = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    work = tmp_path / "run"
    shutil.copytree(test_config_run, work, symlinks=True)
    report = tmp_path / "report.html"
    cmd = snakemake_cmd(work, TEST_CONFIG, "--report", str(report))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-3000:]

    check_report(binary, report, tmp_path)


def check_report(binary: str, report, tmp_path) -> None:
    """Open ``report`` as a reader does and check what it shows first."""
    browser = Browser(binary, tmp_path / "profile")
    try:
        browser.open(report.as_uri())
        # the menu's result categories, in the order the report shows them
        cats = browser.wait_for(
            "typeof categories !== 'undefined' && "
            "Object.keys(categories).sort((a, b) => a.localeCompare(b))"
        )
        assert cats[0] == "1 Headline" and "Metrics" in cats
        browser.wait_for(CLICK.format(text="1 Headline"))
        # one result in the category: its row's view button shows it
        browser.wait_for(VIEW.format(name="headline.html"))
        src = browser.wait_for(
            "(() => { const f = document.querySelector('iframe');"
            " return f && f.src.startsWith('data:text/html') && f.src.length; })()"
        )
        assert src > 1000
        # the table inside the iframe, read in the frame's own script context
        rows = None
        for _ in range(50):
            for ctx in browser.frame_contexts():
                if ctx.get("auxData", {}).get("isDefault") and ctx.get("origin") != "file://":
                    try:
                        rows = browser.eval(
                            "[...document.querySelectorAll('#headline tbody tr')]"
                            ".map(r => [...r.cells].map(c => c.textContent))",
                            context=ctx["id"],
                        )
                    except RuntimeError:  # a context that has gone
                        continue
                    if rows:
                        break
            if rows:
                break
            browser.send("Runtime.evaluate", {"expression": "1"}, session=True)
        assert rows, "the headline table did not render"
        methods = [r[0] for r in rows]
        assert methods[:2] == ["Curv NLL", "Curv LR"] and "Yeom" in methods
        nll = rows[0][1]
        assert re.match(r"\d+\.\d\d ± \d+\.\d\d / \d+\.\d\d ± \d+\.\d\d \(curv_nll\)", nll), nll
        browser.screenshot(tmp_path / "headline.png")

        # the ROC figure: open it as a reader does, from the Metrics category
        browser.wait_for(CLICK.format(text="Results") + " || true")
        browser.wait_for(CLICK.format(text="Metrics"))
        browser.wait_for(VIEW.format(name="roc.png"))
        size = browser.wait_for(
            "(() => { const i = [...document.querySelectorAll('img')]"
            ".find(i => i.src.startsWith('data:image/png'));"
            " return i && i.complete && i.naturalWidth > 0"
            " && [i.naturalWidth, i.naturalHeight]; })()"
        )
        assert size[0] > 1000 and size[1] > 400  # two panels side by side
        browser.screenshot(tmp_path / "roc.png")
        assert browser.errors == [], browser.errors
    finally:
        browser.close()
        if os.environ.get("CURVMIA_SCREENSHOTS"):
            for name in ("headline.png", "roc.png"):
                if (tmp_path / name).exists():
                    shutil.copy(tmp_path / name, os.environ["CURVMIA_SCREENSHOTS"])
