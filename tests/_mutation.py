"""Mutation testing of the core modules with mutmut 3 (docs/testing.md).

    python tests/_mutation.py list   [--module M]             # mutants in sample order
    python tests/_mutation.py run    [--module M] [--per-module K] [--all]
    python tests/_mutation.py ci                               # the fixed CI sample

mutmut writes its mutants (and results) under ``mutants/`` in the repository root, with the
settings of ``[tool.mutmut]`` in pyproject.toml (which modules, which fast tests).

The sample.  Each mutant is identified by its content: the module, the function it mutates
and the source of the mutated function (``ast.unparse``, the name normalised), never by
mutmut's running number.  The sample order of a module is the order of
sha256(f"{SEED}:{identity}"), so the first K mutants of a module are a seeded random sample
that stays put when other functions change or are added; a changed function gets a fresh
draw of its own mutants only.  ``run --per-module K`` measures the first K of every module,
``ci`` the first ``CI_PER_MODULE`` (regenerating the sample after a merge needs nothing but
rerunning: the sample is a function of the code).  Mutants argued equivalent in
docs/testing.md are listed in EQUIVALENT by the first 12 hex digits of their sample hash;
they are reported but never count as survivors.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = 18
MODULES = ("curvature", "scores", "attacks", "metrics", "distinguish", "theory", "masks", "data")
# data.py: only the image transforms are core (the rest is download and file handling);
# theory.py: the analysis, not the matplotlib drawing (plot_sweep, plot_main: images read by eye)
ONLY = {"data": {"to_float", "normalize", "random_crop_flip"}}
SKIP = {"theory": {"plot_sweep", "plot_main"}}
CI_PER_MODULE = 5
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS.update({36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"})
MUTANT = re.compile(r"^(x.*)__mutmut_(\d+)$")
EQUIVALENT: dict[str, str] = {}  # sample hash prefix -> one-line argument (docs/testing.md)


def mutmut(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=REPO, check=check, text=True)


def generate() -> None:
    """Write mutmut's mutants of the configured modules under mutants/ (no test runs)."""
    code = (
        "import os\n"
        "from mutmut import __main__ as m\n"
        "m.set_mutant_under_test('mutant_generation')\n"
        "os.makedirs('mutants', exist_ok=True)\n"
        "m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths()\n"
        "m.store_lines_covered_by_tests(); m.create_mutants(os.cpu_count() or 2)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def mutants(module: str) -> list[tuple[str, str]]:
    """(sample hash, mutmut name) of a module's mutants, in sample order."""
    path = REPO / "mutants" / "curvmia" / f"{module}.py"
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        match = MUTANT.match(node.name)
        if match is None:
            continue
        func = match.group(1)
        plain = func.split("ǁ")[-1] if "ǁ" in func else func[2:]
        if module in ONLY and plain not in ONLY[module] or plain in SKIP.get(module, ()):
            continue
        node.name = "f"
        identity = f"{module}:{func}:{ast.unparse(node)}"
        digest = hashlib.sha256(f"{SEED}:{identity}".encode()).hexdigest()
        out.append((digest, f"curvmia.{module}.{match.group(0)}"))
    return sorted(out)


def results(module: str) -> dict[str, int | None]:
    meta = REPO / "mutants" / "curvmia" / f"{module}.py.meta"
    return json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}


def run(modules: list[str], per_module: int | None) -> int:
    """Run the sampled mutants of ``modules``; print scores and survivors; 1 if any survive."""
    generate()
    chosen = {m: mutants(m)[:per_module] for m in modules}
    names = [n for m in modules for _, n in chosen[m]]
    t0 = time.perf_counter()
    mutmut("run", *names, check=False)
    seconds = time.perf_counter() - t0
    bad = 0
    for m in modules:
        codes = results(m)
        killed = equivalent = 0
        survivors = []
        for digest, name in chosen[m]:
            status = STATUS.get(codes.get(name), "not run")
            if status in ("killed", "timeout"):
                killed += 1
            elif digest[:12] in EQUIVALENT:
                equivalent += 1
            else:
                survivors.append((digest[:12], name, status))
        n = len(chosen[m])
        score = killed / max(n - equivalent, 1)
        print(f"{m}: {killed} killed, {equivalent} equivalent, {len(survivors)} left of {n}")
        print(f"{m}: mutation score {100 * score:.1f}% (equivalent mutants excluded)")
        for digest, name, status in survivors:
            print(f"  {status}: {name} [{digest}]")
        bad += len(survivors)
    print(f"{len(names)} mutants in {seconds:.0f} s")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["list", "run", "ci"])
    ap.add_argument("--module", action="append", choices=MODULES)
    ap.add_argument("--per-module", type=int, default=None, help="first K of each module")
    a = ap.parse_args()
    modules = a.module or list(MODULES)
    if a.command == "list":
        generate()
        for m in modules:
            for digest, name in mutants(m)[: a.per_module]:
                print(digest[:12], name)
        return
    per = CI_PER_MODULE if a.command == "ci" else a.per_module
    sys.exit(run(modules, per))


if __name__ == "__main__":
    main()
