"""Apptainer images, as far as they can be checked without Apptainer; the locked environment.

Apptainer cannot be installed on the CI machine, so the definition files are parsed and
cross-checked (header, sections, the lock each installs), every rule must name an image that
containers/ defines, running with --sdm apptainer must stop before any job, and each
definition's %post and %test are replayed in a clean virtual environment with the same lock
and %files sources (only the base image differs: the host's Python 3.11 and system packages).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _util import snakemake_cmd, subprocess_env

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
CONTAINERS = REPO / "containers"
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
DEFAULT_CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
IMAGES = DEFAULT_CONFIG["containers"]
DEFINITIONS = sorted(CONTAINERS.glob("*.def"))
SECTIONS = {"labels", "files", "post", "environment", "test", "help", "runscript", "setup"}
# Transitive pins that may differ between the full lock and the image locks, and why.
CAPPED_BY_TOOLS = {"packaging": "snakemake 9.27.1 requires packaging<26; no snakemake in images"}


def parse_def(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Header keywords and section bodies of an Apptainer definition file (strict)."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.rstrip()
        if current is None and (not line or line.lstrip().startswith("#")):
            continue
        m = re.fullmatch(r"%(\w+)", line)
        if m:
            current = m.group(1)
            assert current in SECTIONS, f"{path}:{n}: unknown section %{current}"
            assert current not in sections, f"{path}:{n}: section %{current} twice"
            sections[current] = []
        elif current is None:
            m = re.fullmatch(r"(\w+):\s*(\S.*)", line)
            assert m, f"{path}:{n}: expected 'Keyword: value' in the header, got {line!r}"
            header[m.group(1)] = m.group(2)
        else:
            sections[current].append(line)
    return header, sections


def read_pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (requirement or lock file)."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def lock_entries(path: Path) -> dict[str, list[str]]:
    """name==version -> its sha256 hashes, for every entry of a pip-compile lock."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+==\S+)", line)
        if m:
            current = m.group(1)
            entries[current] = []
        elif current and "--hash=sha256:" in line:
            entries[current].append(line.split("--hash=sha256:")[1].split()[0])
        elif not line.startswith(" "):
            current = None
    return entries


def image_def(ref: str) -> Path:
    """The definition file of a configured image (containers/<name>.sif <- <name>.def)."""
    return CONTAINERS / (Path(ref).stem + ".def")


def def_lock(path: Path) -> str:
    """The lock file a definition installs (its %labels curvmia.lock)."""
    _, sections = parse_def(path)
    labels = dict(line.split(None, 1) for line in map(str.strip, sections["labels"]) if line)
    return labels["curvmia.lock"]


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_definition_parses_and_installs_its_lock(path):
    header, sections = parse_def(path)
    assert header["Bootstrap"] == "docker", header
    assert re.fullmatch(r"python:3\.11[\w.-]*", header["From"]), header
    assert {"post", "files", "environment", "test", "help", "labels"} <= sections.keys()
    files = [line.split() for line in sections["files"] if line.strip()]
    lock = def_lock(path)
    assert [lock, f"/opt/curvmia/{Path(lock).name}"] in files
    for src, _ in files:
        assert (REPO / src).exists(), src
    post = "\n".join(sections["post"])
    installs = re.findall(r"pip install ([^\n]*)", post)
    lock_install = f"-r /opt/curvmia/{Path(lock).name}"
    assert any("--require-hashes" in c and c.endswith(lock_install) for c in installs), installs
    # nothing else comes from an index: the lock, then the package built with the lock's setuptools
    for cmd in installs:
        assert "--require-hashes" in cmd or cmd == "--no-deps --no-build-isolation /opt/curvmia/src"
    assert any("PYTHONNOUSERSITE=1" in line for line in sections["environment"])


def test_requirement_files_and_locks_agree():
    full = read_pins(ENVS / "requirements.txt")
    lock = read_pins(ENVS / "requirements.lock")
    for name, version in full.items():
        assert lock.get(name) == version, (name, version, lock.get(name))
    # the TensorFlow image (conversion only) has its own pins: checked below
    for path in [p for p in DEFINITIONS if def_lock(p) != "envs/tf.lock"]:
        image_lock_file = REPO / def_lock(path)
        req = read_pins(image_lock_file.parent / "requirements-gpu.txt")
        image_lock = read_pins(image_lock_file)
        assert req and set(req) <= set(full), path
        for name, version in req.items():
            assert full[name] == version == image_lock[name], (path, name)
        # an image's lock holds only packages of the full lock, at its versions except where a
        # tool the image does not contain caps a shared dependency (reviewed list)
        assert set(image_lock) <= set(lock), (path, set(image_lock) - set(lock))
        differ = {n for n, v in image_lock.items() if lock[n] != v}
        assert differ <= set(CAPPED_BY_TOOLS), (path, differ)
        # torch's CUDA build needs its CUDA runtime wheels, on the CPU too
        assert [n for n in image_lock if n.startswith("nvidia-")], path
    # the conda environment files carry their locks' entries: tests/test_conda_env.py
    # the TensorFlow image installs exactly its requirement file's pins (no torch)
    tf_req, tf_lock = read_pins(ENVS / "requirements-tf.txt"), read_pins(ENVS / "tf.lock")
    assert tf_req and all(tf_lock[n] == v for n, v in tf_req.items()), (tf_req, tf_lock)
    assert "torch" not in tf_lock


@pytest.mark.parametrize("lock", ["requirements.lock", "gpu.lock"])
def test_every_lock_entry_is_pinned_with_hashes(lock):
    entries = lock_entries(ENVS / lock)
    assert len(entries) > 20
    for entry, hashes in entries.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), entry


def test_lock_holds_the_cached_torch_wheel_hash():
    """`pip install --require-hashes` must accept the torch wheel installed here."""
    import hashlib

    wheels = sorted(Path("/opt/pypi-more/files").glob("torch-2.14.1-cp311-*.whl"))
    if not wheels:
        pytest.skip("no local torch wheel cache on this machine")
    h = hashlib.sha256()
    with open(wheels[0], "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    for lock in ("requirements.lock", "gpu.lock"):
        assert h.hexdigest() in lock_entries(ENVS / lock)["torch==2.14.1"], lock


def test_every_rule_names_an_image_that_containers_defines(workflow_rules):
    """A new rule needs `container: IMAGES["cpu"]` (or "gpu") after its conda: line."""
    runnable = {name: r for name, r in workflow_rules.items() if not r["norun"]}
    assert len(runnable) >= 9
    for name, r in runnable.items():
        assert r["container"] in IMAGES.values(), f"rule {name}: no image of config 'containers'"
        assert image_def(r["container"]).exists(), (name, r["container"])


def test_sdm_apptainer_without_apptainer_stops_before_any_job(tmp_path):
    if shutil.which("apptainer") or shutil.which("singularity"):
        pytest.skip("apptainer is installed here")
    cmd = snakemake_cmd(tmp_path, TEST_CONFIG, "--sdm", "apptainer", "--cores", "1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "apptainer or singularity command has to be available" in out, out[-3000:]
    assert "Finished job" not in out and "rule " not in out, out[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


# System packages that provide a C compiler in a Debian-based image (Triton needs one).
COMPILERS = {"gcc", "build-essential", "clang", "tcc"}


def configs_that_compile() -> list[str]:
    """Shipped configs and presets that turn on torch.compile (train or scoring)."""
    out = []
    for path in sorted((REPO / "config").rglob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if not isinstance(cfg, dict) or "properties" in cfg:
            continue  # the schema
        if any((cfg.get(s) or {}).get("compile") for s in ("train", "scoring")):
            out.append(path.name)
    return out


def test_images_that_may_compile_install_a_c_compiler():
    """Static: the host of a venv replay has gcc, so only the definition can show this."""
    assert {"imagenet.yaml", "fast.yaml"} <= set(configs_that_compile())
    # every configured image may run a config with compile on (any config picks any image)
    for path in {image_def(ref) for ref in IMAGES.values()}:
        post = "\n".join(parse_def(path)[1]["post"])
        installs = re.findall(r"apt-get install ([^\n]*)", post)
        assert any(COMPILERS & set(cmd.split()) for cmd in installs), (path.name, installs)


def replay(path: Path, root: Path) -> subprocess.CompletedProcess:
    """Run a definition's %post, then its %test, in a clean venv under `root`.

    %files are copied under `root` and every absolute path of the image is moved there; the
    base image's system packages (apt-get lines) are left to the host, whose Python 3.11
    stands in for the base image's. pip reads the host's configuration (local wheel cache).
    """
    _, sections = parse_def(path)
    for line in filter(str.strip, sections["files"]):
        src, dst = line.split()
        target = root / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (REPO / src).is_dir() else shutil.copy2
        copy(REPO / src, target)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)

    def script(section: str) -> str:
        lines = [
            line.replace("/opt/", f"{root}/opt/")
            for line in sections[section]
            if not re.search(r"\bapt-get\b|/var/lib/apt", line)
        ]
        return "\n".join(lines)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    body = f"set -e\n{script('post')}\n{script('test')}\n"
    return subprocess.run(
        ["bash", "-c", body], cwd=root, env=env, capture_output=True, text=True, timeout=1500
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_definition_builds_and_passes_its_own_test(path, tmp_path):
    proc = replay(path, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    if def_lock(path) == "envs/tf.lock":
        assert "tensorflow 2.21.0 sonnet 2.0.2" in out, out[-3000:]
    else:
        assert "torch 2.14.1" in out and "cpu conv ok" in out, out[-3000:]
