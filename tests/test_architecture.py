"""The package's shape, checked from its source: no import cycle among curvmia's modules, a
workflow parse that imports neither torch nor timm, thin script entry points, and no function
body written twice across modules."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from _util import subprocess_env

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "curvmia"
MAIN_BUDGET = 40  # lines of a script's main(), from `def main` to its last line
TRIVIAL = 3  # function bodies of at most this many statements may repeat
TOP_LEVEL = re.compile(
    r"^(?:from (curvmia(?:\.\w+)*) import ([\w, ()]+)|import (curvmia(?:\.\w+)*))", re.M
)


def imports_of(path: Path, modules: set[str]) -> dict[str, int]:
    """The curvmia modules that ``path`` (a module of the package) imports anywhere in its
    source (inside functions and conditionals too), each with the line of its first import.
    ``from curvmia import x`` and ``from . import x`` name module ``x`` when it is one, the
    package (``__init__``) otherwise."""
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        found.setdefault(name, line)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "curvmia":
                    add(parts[1] if len(parts) > 1 else "__init__", node.lineno)
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") if node.module else []
            if node.level == 0 and parts[:1] != ["curvmia"]:
                continue
            rest = parts[1:] if node.level == 0 else parts
            if rest:
                add(rest[0], node.lineno)
            else:  # from curvmia import x / from . import x
                for alias in node.names:
                    add(alias.name if alias.name in modules else "__init__", node.lineno)
    return {m: line for m, line in found.items() if m != path.stem}


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the import} over curvmia/*.py."""
    files = sorted(PACKAGE.glob("*.py"))
    modules = {p.stem for p in files}
    return {p.stem: imports_of(p, modules) for p in files}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` that hold a cycle (two or more nodes,
    or one that points at itself), each sorted; Tarjan's algorithm, without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted(set(graph) | {w for vs in graph.values() for w in vs})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1 or v in graph.get(v, ()):
                    found.append(sorted(component))
    return sorted(found)


def cycle_path(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """One cycle through the first module of ``component``, as the modules in import order
    (the first repeated at the end): the shortest, by breadth-first search."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    for v in queue:
        for w in sorted(graph.get(v, ())):
            if w == start:
                return [*paths[v], start]
            if w in inside and w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise ValueError(f"{component} holds no cycle")


def test_cycle_finder_on_graphs_with_known_answers():
    assert cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert cycles({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}) == []  # a diamond
    assert cycles({"a": ["a"]}) == [["a"]]
    loop = {"m": ["t"], "t": ["i"], "i": ["f", "x"], "f": ["m"], "x": []}
    assert cycles(loop) == [["f", "i", "m", "t"]]
    assert cycle_path(loop, ["f", "i", "m", "t"]) == ["f", "m", "t", "i", "f"]
    two = {"a": ["b"], "b": ["a", "c"], "c": ["d"], "d": ["e", "c"], "e": []}
    assert cycles(two) == [["a", "b"], ["c", "d"]]
    # the shortest way round: a -> c -> a, not a -> b -> c -> a
    assert cycle_path({"a": ["b", "c"], "b": ["c"], "c": ["a"]}, ["a", "b", "c"]) == [
        "a",
        "c",
        "a",
    ]


def test_imports_are_read_at_every_level(tmp_path):
    (tmp_path / "x.py").write_text("", encoding="utf-8")
    mod = tmp_path / "m.py"
    mod.write_text(
        "import os\n"
        "from curvmia import x\n"
        "from . import io\n"
        "def f():\n"
        "    import curvmia.train as t\n"
        "    if t:\n"
        "        from .fz import sha\n"
        "class C:\n"
        "    def g(self):\n"
        "        from curvmia.models import build\n"
        "from curvmia.m import y\n",
        encoding="utf-8",
    )
    got = imports_of(mod, {"m", "x", "train", "fz", "models"})
    assert got == {"x": 2, "__init__": 3, "train": 5, "fz": 7, "models": 10}


def test_no_import_cycle_among_the_package_modules():
    graph = import_graph()
    assert {"models", "scores", "io"} <= set(graph) and graph["scores"], graph
    found = cycles(graph)
    lines = []
    for component in found:
        path = cycle_path(graph, component)
        steps = ", ".join(f"{a}.py:{graph[a][b]} imports {b}" for a, b in zip(path, path[1:]))
        lines.append(f"{' → '.join(path)} ({steps}); the cycle's modules: {component}")
    assert not found, "import cycle among curvmia modules:\n" + "\n".join(lines)


def parse_time_modules() -> list[str]:
    """The curvmia modules imported at column 0 of the Snakefile and every rules/*.smk (the
    workflow's top level, which every process parses, SLURM jobs included)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found = set()
    for f in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        for source, names, plain in TOP_LEVEL.findall(f.read_text(encoding="utf-8")):
            if plain:
                found.add(plain)
            elif source == "curvmia":  # from curvmia import a, b
                names = re.findall(r"\w+", names)
                found |= {f"curvmia.{n}" for n in names if n in modules} or {"curvmia"}
            else:
                found.add(source)
    return sorted(found)


def test_parse_time_modules_import_without_torch_and_timm():
    """Every SLURM job parses the workflow again; torch and timm take seconds to import. Only
    the submitting process imports them, inside the model checks (a misspelt arch still fails
    the dry run)."""
    modules = parse_time_modules()
    assert len(modules) >= 3 and "curvmia.groups" in modules, modules
    code = (
        "import sys\n"
        "for name in ('torch', 'timm', 'torchvision'):\n"
        "    sys.modules[name] = None  # an import of it raises ImportError\n"
        f"for m in {modules!r}:\n"
        "    __import__(m)\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env()
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], proc.stderr[-3000:]


def long_mains(files: Iterable[Path], root: Path = REPO) -> dict[str, int]:
    """ "path:line" (relative to ``root``) -> length of every ``def main`` in ``files`` longer
    than MAIN_BUDGET lines."""
    out = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main":
                n = node.end_lineno - node.lineno + 1
                if n > MAIN_BUDGET:
                    out[f"{path.relative_to(root)}:{node.lineno}"] = n
    return out


def test_long_mains_are_measured_from_def_to_the_last_line(tmp_path):
    path = tmp_path / "s.py"
    body = "def main():\n" + "    x = 1\n" * 39 + "\n\ndef other():\n" + "    y = 2\n" * 50
    path.write_text(body, encoding="utf-8")
    assert long_mains([path], tmp_path) == {}  # 40 lines: within the budget
    path.write_text("import os\n" + body.replace("():\n", "():\n    z = 0\n", 1), "utf-8")
    assert long_mains([path], tmp_path) == {"s.py:2": 41}


def test_every_script_main_is_at_most_40_lines():
    files = sorted([*(REPO / "scripts").glob("*.py"), *(REPO / "benchmarks").glob("*.py")])
    assert len(files) > 20
    long = long_mains(files)
    listing = "\n".join(f"  {where}: {n} lines" for where, n in sorted(long.items()))
    assert not long, f"main() longer than {MAIN_BUDGET} lines (move its logic out):\n{listing}"


def duplicate_bodies(files: Iterable[Path]) -> list[list[str]]:
    """Groups of functions (``module.name``) whose bodies, less a docstring, are the same
    code: more than TRIVIAL statements, equal in ``ast.dump``."""
    seen: dict[str, list[str]] = {}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if len(body) > TRIVIAL:
                key = ast.dump(ast.Module(body=body, type_ignores=[]))
                seen.setdefault(key, []).append(f"{path.stem}.{node.name}")
    return sorted(sorted(names) for names in seen.values() if len(names) > 1)


def test_duplicate_finder_sees_the_same_body_under_another_name(tmp_path):
    body = '    """doc"""\n    a = x + 1\n    b = a * 2\n    c = b - 3\n    return c\n'
    (tmp_path / "p.py").write_text("def f(x):\n" + body, encoding="utf-8")
    (tmp_path / "q.py").write_text(
        "def g(x):\n" + body.replace("doc", "other") + "\ndef h(x):\n    return x\n",
        encoding="utf-8",
    )
    assert duplicate_bodies(sorted(tmp_path.glob("*.py"))) == [["p.f", "q.g"]]
    (tmp_path / "q.py").write_text("def g(x):\n" + body.replace("- 3", "- 4"), "utf-8")
    assert duplicate_bodies(sorted(tmp_path.glob("*.py"))) == []


def test_no_function_body_is_written_twice_in_the_package():
    dups = duplicate_bodies(sorted(PACKAGE.glob("*.py")))
    assert not dups, f"the same function body twice (keep one, import it): {dups}"
