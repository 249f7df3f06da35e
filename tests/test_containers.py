"""Apptainer images, as far as they can be checked without Apptainer; the locked environment.

Apptainer cannot be installed on the CI machine, so the definition files are parsed and
cross-checked (header, sections, the lock each installs), every rule must name an image that
containers/ defines, and running with --sdm apptainer must stop before any job.
"""

import re
import shutil
import subprocess
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
SECTIONS = {"labels", "files", "post", "environment", "test", "help", "runscript", "setup"}
CUDA_WHEELS = re.compile(r"^(nvidia-|cuda-|triton$)")
GPU_RULES = {"train", "score", "score_shard", "train_sweep", "score_sweep"}
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


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_definition_parses_and_installs_its_lock(kind):
    header, sections = parse_def(CONTAINERS / f"{kind}.def")
    assert header["Bootstrap"] == "docker", header
    assert re.fullmatch(r"python:3\.11[\w.-]*", header["From"]), header
    assert {"post", "files", "environment", "test", "help", "labels"} <= sections.keys()
    files = [line.split() for line in sections["files"] if line.strip()]
    assert [f"envs/{kind}.lock", f"/opt/curvmia/{kind}.lock"] in files
    for src, _ in files:
        assert (REPO / src).exists(), src
    post = "\n".join(sections["post"])
    installs = re.findall(r"pip install ([^\n]*)", post)
    lock_install = f"-r /opt/curvmia/{kind}.lock"
    assert any("--require-hashes" in c and c.endswith(lock_install) for c in installs), installs
    # nothing else comes from an index: the lock, then the package built with the lock's setuptools
    for cmd in installs:
        assert "--require-hashes" in cmd or cmd == "--no-deps --no-build-isolation /opt/curvmia/src"
    assert any("PYTHONNOUSERSITE=1" in line for line in sections["environment"])


def test_requirement_files_lock_and_conda_env_agree():
    full = read_pins(ENVS / "requirements.txt")
    lock = read_pins(ENVS / "requirements.lock")
    for name, version in full.items():
        assert lock.get(name) == version, (name, version, lock.get(name))
    for kind in IMAGES:
        req = read_pins(ENVS / f"requirements-{kind}.txt")
        image_lock = read_pins(ENVS / f"{kind}.lock")
        assert req and set(req) <= set(full), kind
        for name, version in req.items():
            assert full[name] == version == image_lock[name], (kind, name)
        # an image's lock holds only packages of the full lock, at its versions except where a
        # tool the image does not contain caps a shared dependency (reviewed list)
        assert set(image_lock) <= set(lock), (kind, set(image_lock) - set(lock))
        differ = {n for n, v in image_lock.items() if lock[n] != v}
        assert differ <= set(CAPPED_BY_TOOLS), (kind, differ)
    cpu = read_pins(ENVS / "cpu.lock")
    assert not [n for n in cpu if CUDA_WHEELS.match(n)], "cpu.lock must leave out CUDA wheels"
    assert [n for n in read_pins(ENVS / "gpu.lock") if n.startswith("nvidia-")]
    # the conda environment: the lock's Python, and the runtime lock itself
    env = yaml.safe_load((ENVS / "curvmia.yaml").read_text())
    deps = env["dependencies"]
    header = (ENVS / "requirements.lock").read_text()
    py = re.search(r"autogenerated by pip-compile with Python (\d+\.\d+)", header).group(1)
    assert f"python={py}" in deps
    pip_section = next(d for d in deps if isinstance(d, dict))["pip"]
    assert pip_section == ["-r gpu.lock"], pip_section


@pytest.mark.parametrize("lock", ["requirements.lock", "gpu.lock", "cpu.lock"])
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
    for lock in ("requirements.lock", "gpu.lock", "cpu.lock"):
        assert h.hexdigest() in lock_entries(ENVS / lock)["torch==2.14.1"], lock


def test_every_rule_names_an_image_that_containers_defines(workflow_rules):
    """A new rule needs `container: IMAGES["cpu"]` (or "gpu") after its conda: line."""
    runnable = {name: r for name, r in workflow_rules.items() if not r["norun"]}
    assert len(runnable) >= 9
    for name, r in runnable.items():
        kinds = [k for k, ref in IMAGES.items() if ref == r["container"]]
        assert kinds, f"rule {name} has no container from config 'containers': {r['container']}"
        assert (CONTAINERS / f"{kinds[0]}.def").exists(), name
        assert (kinds[0] == "gpu") == (name in GPU_RULES), (name, kinds)


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
