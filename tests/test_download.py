"""CIFAR download, verification and preparation against archives in the exact CIFAR python
format (pickled dicts in a tar.gz, tests/_cifar.py), served from a local HTTP server."""

import hashlib
import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from _cifar import _batch, build_cifar_archive

from curvmia.cifar import CIFAR, fetch_archive, raw_archive_path, read_cifar
from curvmia.data import load_prepared, prepare, prepared_dir_name
from curvmia.download import ChecksumError, download


class Server:
    """Serves one blob at /<name>; honours Range; optionally drops the first response
    after ``cut`` bytes (a broken connection)."""

    def __init__(self, blob: bytes, name: str, cut: int | None = None, ranges: bool = True):
        self.blob, self.name, self.cut, self.ranges = blob, name, cut, ranges
        self.requests: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path != f"/{outer.name}":
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                start = 0
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(outer.blob):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    end = len(outer.blob) - 1
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(outer.blob)}")
                else:
                    self.send_response(200)
                body = outer.blob[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut is not None:
                    cut, outer.cut = outer.cut, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # drop the connection mid-body
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{self.name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def cifar10_blob():
    return build_cifar_archive("cifar10", 20)


def test_download_verify_prepare_cifar10(tmp_path, cifar10_blob, monkeypatch):
    blob, batches = cifar10_blob
    monkeypatch.setitem(CIFAR["cifar10"], "md5", hashlib.md5(blob).hexdigest())
    dest = tmp_path / "raw" / "cifar-10-python.tar.gz"
    with Server(blob, "cifar-10-python.tar.gz") as srv:
        fetch_archive("cifar10", dest, mirror=srv.url.rsplit("/", 1)[0], log=lambda s: None)
    assert dest.read_bytes() == blob
    prepare("cifar10", tmp_path / "prep", test_size=1, split_seed=0, archive=dest)
    d = load_prepared(tmp_path / "prep")
    spec = CIFAR["cifar10"]
    # reference written directly from the pickled dicts: row-major 3x32x32 per image
    ref = np.concatenate([batches[m]["data"] for m in spec["train"]]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(d.train_images, ref)
    assert d.train_images.shape == (100, 3, 32, 32) and d.test_images.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(d.test_labels, batches[spec["test"][0]]["labels"])
    # one pixel by hand: image 3 of batch 2, channel 1 (green), row 5, column 7
    assert d.train_images[23, 1, 5, 7] == batches[spec["train"][1]]["data"][3, 1024 + 5 * 32 + 7]
    assert d.manifest["num_classes"] == 10 and d.manifest["mean"] == [0.4914, 0.4822, 0.4465]


def test_cifar100_reads_fine_labels(tmp_path, monkeypatch):
    blob, batches = build_cifar_archive("cifar100", 30, seed=1)
    arc = tmp_path / "c100.tar.gz"
    arc.write_bytes(blob)
    monkeypatch.setitem(CIFAR["cifar100"], "md5", hashlib.md5(blob).hexdigest())
    dest = tmp_path / "raw" / "cifar-100-python.tar.gz"
    fetch_archive("cifar100", dest, archive=str(arc), log=lambda s: None)  # pre-downloaded
    m = prepare("cifar100", tmp_path / "prep", test_size=1, split_seed=0, archive=dest)
    d = load_prepared(tmp_path / "prep")
    np.testing.assert_array_equal(d.train_labels, batches["cifar-100-python/train"]["fine_labels"])
    assert m["num_classes"] == 100 and m["std"] == [0.2675, 0.2565, 0.2761]


def test_resumes_a_partial_download(tmp_path, cifar10_blob):
    blob, _ = cifar10_blob
    md5 = hashlib.md5(blob).hexdigest()
    dest = tmp_path / "a.tar.gz"
    half = len(blob) // 2
    (tmp_path / "a.tar.gz.part").write_bytes(blob[:half])  # left by a killed earlier run
    with Server(blob, "a.tar.gz") as srv:
        download(srv.url, dest, md5, log=lambda s: None)
    assert srv.requests == [f"bytes={half}-"]
    assert dest.read_bytes() == blob and not (tmp_path / "a.tar.gz.part").exists()


def test_dropped_connection_is_retried_from_where_it_stopped(tmp_path, cifar10_blob):
    blob, _ = cifar10_blob
    dest = tmp_path / "a.tar.gz"
    with Server(blob, "a.tar.gz", cut=1000) as srv:
        download(srv.url, dest, hashlib.md5(blob).hexdigest(), backoff=0.0, log=lambda s: None)
    assert srv.requests == [None, "bytes=1000-"]
    assert dest.read_bytes() == blob


def test_server_without_ranges_restarts(tmp_path, cifar10_blob):
    blob, _ = cifar10_blob
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(b"garbage that must be overwritten")
    with Server(blob, "a.tar.gz", ranges=False) as srv:
        download(srv.url, dest, hashlib.md5(blob).hexdigest(), log=lambda s: None)
    assert dest.read_bytes() == blob


def test_corrupted_archive_is_a_checksum_error_and_leaves_nothing(tmp_path, cifar10_blob):
    blob, _ = cifar10_blob
    bad = bytearray(blob)
    bad[len(bad) // 3] ^= 0xFF
    dest = tmp_path / "raw" / "a.tar.gz"
    with Server(bytes(bad), "a.tar.gz") as srv:
        with pytest.raises(ChecksumError, match="does not match the expected"):
            download(srv.url, dest, hashlib.md5(blob).hexdigest(), log=lambda s: None)
    assert list((tmp_path / "raw").iterdir()) == []
    # a corrupted pre-downloaded archive likewise
    arc = tmp_path / "given.tar.gz"
    arc.write_bytes(bytes(bad))
    with pytest.raises(ChecksumError):
        fetch_archive("cifar10", dest, archive=str(arc), log=lambda s: None)
    assert list((tmp_path / "raw").iterdir()) == []


def test_missing_mirror_file_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.mirror"):
        fetch_archive("cifar10", tmp_path / "x.tar.gz", mirror=str(tmp_path))


def test_prepare_cli_reads_a_cifar_archive(tmp_path, cifar10_blob):
    import subprocess
    import sys

    from _util import REPO, subprocess_env

    blob, batches = cifar10_blob
    arc = tmp_path / "cifar-10-python.tar.gz"
    arc.write_bytes(blob)
    out = tmp_path / "prep" / "manifest.json"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "prepare_data.py"),
        "--dataset",
        "cifar10",
        "--manifest",
        str(out),
        "--test-size",
        "1",
        "--split-seed",
        "0",
        f"--archive={arc}",
        "--path=",
    ]
    # the md5 is checked again at preparation: a swapped archive is refused there
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode != 0 and f"{arc}: md5 {hashlib.md5(blob).hexdigest()}" in proc.stderr
    assert not out.exists()
    cmd.append(f"--md5={hashlib.md5(blob).hexdigest()}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    d = load_prepared(out)
    np.testing.assert_array_equal(
        d.test_images.reshape(20, -1), batches["cifar-10-batches-py/test_batch"]["data"]
    )


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize(
    "payload, refused",
    [
        ("os.system", "global posix.system is refused"),
        ("eval", "global __builtin__.eval is refused"),
        ("object array", "object arrays are refused"),
        ("matrix", "global numpy.matrix is refused"),
        ("list", "expected a dict, got list"),
    ],
)
def test_crafted_cifar_batch_is_refused_without_running_code(tmp_path, payload, refused):
    """A swapped archive with a valid md5 (e.g. given by a mirror's key) still cannot run
    code: the batch files are read with an unpickler that accepts only CIFAR's content."""
    marker = tmp_path / "pwned"
    spec = CIFAR["cifar10"]
    rng = np.random.default_rng(0)
    bad = {
        "os.system": {"data": _RunsCode(marker), "labels": [0]},
        "eval": {"data": _Evals(), "labels": [0]},
        "object array": {"data": np.array([1, "x"], dtype=object), "labels": [0]},
        "matrix": {"data": np.asmatrix(np.zeros((1, 3072), np.uint8)), "labels": [0]},
        "list": [1, 2],
    }[payload]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, member in enumerate(spec["train"] + spec["test"]):
            d = bad if i == 2 else _batch(rng, 4, "labels", 10)
            blob = pickle.dumps(d, protocol=2)
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    arc = tmp_path / "cifar-10-python.tar.gz"
    arc.write_bytes(buf.getvalue())
    md5 = hashlib.md5(buf.getvalue()).hexdigest()
    with pytest.raises(ValueError) as e:
        read_cifar("cifar10", arc, md5)
    assert str(e.value).startswith(f"{arc}: {spec['train'][2]}: not a CIFAR batch file")
    assert refused in str(e.value)
    assert not marker.exists()


OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"  # cifar-10-python.tar.gz, from its website


def test_data_md5_is_the_archive_checksum_and_null_means_the_official_one(tmp_path):
    """An archive that is not the official one (a mirror's own file, the rehearsal's
    synthetic one) passes only with its own md5 in data.md5; a wrong data.md5 is refused
    with a message that names the key, and no config or environment skips the check."""
    blob, _ = build_cifar_archive("cifar10", 4, seed=3)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(blob)
    md5 = hashlib.md5(blob).hexdigest()
    dest = tmp_path / "raw" / "x.tar.gz"
    # data.md5 null: the official md5 is expected, and the message says how to give another
    with pytest.raises(ChecksumError) as e:
        fetch_archive("cifar10", dest, mirror=str(mirror), log=lambda s: None)
    assert f"md5 {md5} does not match the expected {OFFICIAL_MD5}" in str(e.value)
    assert "official cifar10 archive's" in str(e.value) and "data.md5" in str(e.value)
    # a wrong data.md5
    wrong = "0" * 32
    with pytest.raises(ChecksumError, match=f"expected {wrong} \\(data.md5\\)"):
        fetch_archive("cifar10", dest, mirror=str(mirror), md5=wrong, log=lambda s: None)
    assert list((tmp_path / "raw").iterdir()) == []
    # over HTTP likewise
    with Server(blob, "cifar-10-python.tar.gz") as srv:
        with pytest.raises(ChecksumError, match=f"expected {wrong} \\(data.md5\\)"):
            fetch_archive(
                "cifar10", dest, mirror=srv.url.rsplit("/", 1)[0], md5=wrong, log=lambda s: None
            )
    # its own md5: fetched and read
    fetch_archive("cifar10", dest, archive=str(mirror / "cifar-10-python.tar.gz"), md5=md5)
    assert dest.read_bytes() == blob
    assert read_cifar("cifar10", dest, md5)["train_images"].shape == (20, 3, 32, 32)
    with pytest.raises(ChecksumError, match=f"expected {wrong} \\(data.md5\\)"):
        read_cifar("cifar10", dest, wrong)


def test_another_archive_gets_its_own_raw_and_prepared_directories():
    """A non-official archive never masquerades as CIFAR-10: its file lies under
    raw/<md5>/ and its prepared data in another directory; the official md5 written
    explicitly is the same as null."""
    base = {"dataset": "cifar10", "root": "data", "stats": "auto", "test_size": 1,
            "split_seed": 0, "md5": None}  # fmt: skip
    other = "0123456789abcdef0123456789abcdef"
    assert raw_archive_path(base) == "data/raw/cifar-10-python.tar.gz"
    official = {**base, "md5": OFFICIAL_MD5}
    assert raw_archive_path(official) == "data/raw/cifar-10-python.tar.gz"
    assert prepared_dir_name(official) == prepared_dir_name(base)
    mirror = {**base, "md5": other}
    assert raw_archive_path(mirror) == f"data/raw/{other}/cifar-10-python.tar.gz"
    assert prepared_dir_name(mirror) != prepared_dir_name(base)
    assert prepared_dir_name(mirror).startswith("cifar10-")
    # configs written before data.md5 existed prepare into the same directory as before
    assert prepared_dir_name({k: v for k, v in base.items() if k != "md5"}) == (
        prepared_dir_name(base)
    )


def test_synthetic_archive_has_the_official_layout_and_is_reproducible(tmp_path):
    """tests/_cifar.py: the official member names, pickled dicts, and the same bytes (md5)
    on every call, so a documented md5 stays valid."""
    import tarfile as tf

    from _cifar import write_cifar_archive

    path, md5 = write_cifar_archive(tmp_path, "cifar10", 20, 20)
    assert md5 == hashlib.md5(build_cifar_archive("cifar10", 20, n_test=20)[0]).hexdigest()
    with tf.open(path, "r:gz") as t:
        names = t.getnames()
        meta = pickle.load(t.extractfile("cifar-10-batches-py/batches.meta"))
    assert names == [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + [
        "cifar-10-batches-py/test_batch",
        "cifar-10-batches-py/batches.meta",
    ]
    assert meta["label_names"][0] == "airplane" and len(meta["label_names"]) == 10
    arrays = read_cifar("cifar10", path, md5)
    assert arrays["train_images"].shape == (100, 3, 32, 32)
    assert arrays["test_images"].shape == (20, 3, 32, 32)
