"""The CIFAR-10/100 python-version archives: where they come from, fetching and verifying
them, and reading their batches without running code.

The official archives (https://www.cs.toronto.edu/~kriz/cifar.html) are checked against their
published md5, or against config data.md5 for another archive (a mirror's own file), which
then lives and is prepared apart from the official one. Sources: a file already downloaded,
a local mirror directory, a mirror URL, or the official URL (:func:`curvmia.download.download`:
HTTP range resume and retries). Each batch is a pickle, read with :class:`CifarUnpickler`,
which accepts only what the format holds.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .download import ChecksumError, download, verify_and_install
from .io import md5_file

# The official python-version archives (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "filename": "cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
        "test": ["cifar-10-batches-py/test_batch"],
        "label_key": "labels",
        "num_classes": 10,
        "mean": [0.4914, 0.4822, 0.4465],
        "std": [0.2023, 0.1994, 0.2010],
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "filename": "cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": ["cifar-100-python/train"],
        "test": ["cifar-100-python/test"],
        "label_key": "fine_labels",
        "num_classes": 100,
        "mean": [0.5071, 0.4867, 0.4408],
        "std": [0.2675, 0.2565, 0.2761],
    },
}


def expected_md5(dataset: str, md5: str | None = None) -> str:
    """The md5 a CIFAR archive must have: ``md5`` (config data.md5) or the official one."""
    return md5 or CIFAR[dataset]["md5"]


def _whose_md5(dataset: str, md5: str | None) -> str:
    if md5 and md5 != CIFAR[dataset]["md5"]:
        return " (data.md5)"
    return (
        f" (the official {dataset} archive's; another archive, e.g. a mirror's own file, "
        "needs its md5 in data.md5)"
    )


def is_official(dataset: str, md5: str | None) -> bool:
    """Whether ``md5`` (config data.md5) names the official archive of ``dataset``."""
    return expected_md5(dataset, md5) == CIFAR[dataset]["md5"]


def raw_archive_path(data_cfg: dict) -> str:
    """Where the fetched archive of a CIFAR dataset is kept: ``<root>/raw/<file name>``, or
    ``<root>/raw/<md5>/<file name>`` for an archive other than the official one (data.md5),
    so that it never takes the official file's place."""
    spec = CIFAR[data_cfg["dataset"]]
    md5 = data_cfg.get("md5")
    sub = "" if is_official(data_cfg["dataset"], md5) else f"{md5}/"
    return f"{data_cfg['root']}/raw/{sub}{spec['filename']}"


def fetch_archive(
    dataset: str,
    dest: str | os.PathLike,
    *,
    mirror: str | None = None,
    archive: str | None = None,
    md5: str | None = None,
    url: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    log: Callable[[str], None] = print,
) -> Path:
    """Put the verified archive of a CIFAR ``dataset`` at ``dest``.

    Sources, first match wins: ``archive`` (an already-downloaded file, copied),
    ``mirror`` (a local directory holding the official file name, or a base URL),
    else the official URL (``url`` overrides it, e.g. for tests). The file must have the
    md5 ``md5`` (config data.md5) or, when it is None, the official archive's md5.
    """
    if dataset not in CIFAR:
        raise ValueError(
            f"data.dataset: {dataset!r} has no download; expected one of {list(CIFAR)}"
        )
    spec = CIFAR[dataset]
    want, whose = expected_md5(dataset, md5), _whose_md5(dataset, md5)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    local = None
    if archive:
        local = Path(archive)
        key = "data.archive"
    elif mirror and "://" not in mirror:
        local = Path(mirror) / spec["filename"]
        key = "data.mirror"
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{key}: {local} does not exist")
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(local, tmp)
        log(f"copied {local}")
        return verify_and_install(tmp, dest, want, whose)
    src = url or (f"{mirror.rstrip('/')}/{spec['filename']}" if mirror else spec["url"])
    log(f"downloading {src}")
    return download(src, dest, want, retries=retries, timeout=timeout, log=log, whose=whose)


def _no_object_dtype(*args: object) -> np.dtype:
    d = np.dtype(*args)
    if d.hasobject:
        raise pickle.UnpicklingError(f"object arrays are refused (dtype {d})")
    return d


def _plain_ndarray(subtype: object, *args: object) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"array subtype {subtype!r} is refused")
    return np.ndarray.__new__(np.ndarray, *args)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is refused except for latin1 bytes")
    return text.encode("latin1")


class CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batch files that accepts only what the format holds.

    Dicts, lists, bytes, strings, numbers and numeric numpy arrays; every other global
    (``os.system``, ``builtins.eval``, object arrays, array subclasses...) is refused, so a
    crafted batch file cannot run code.
    """

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _no_object_dtype,
        ("numpy.core.multiarray", "_reconstruct"): _plain_ndarray,
        ("numpy._core.multiarray", "_reconstruct"): _plain_ndarray,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is refused") from None


def _check_plain(obj: object, where: str) -> None:
    """Refuse anything but dicts, lists, bytes, strings, numbers and numeric arrays."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where)
            _check_plain(v, where)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_plain(v, where)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or type(obj) is not np.ndarray:
            raise pickle.UnpicklingError(f"{where}: object array refused")
    elif not isinstance(obj, (bytes, str, int, float, bool, type(None))):
        raise pickle.UnpicklingError(f"{where}: value of type {type(obj).__name__} refused")


def _unpickle(fh, where: str) -> dict:
    """One CIFAR batch (a Python 2 pickle) read with :class:`CifarUnpickler`."""
    try:
        d = CifarUnpickler(fh, encoding="latin1").load()
        if not isinstance(d, dict):
            raise pickle.UnpicklingError(f"expected a dict, got {type(d).__name__}")
        _check_plain(d, where)
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError) as e:
        raise ValueError(f"{where}: not a CIFAR batch file: {e}") from None
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_cifar(
    dataset: str, archive: str | os.PathLike, md5: str | None = None
) -> dict[str, np.ndarray]:
    """Read the train and test splits of a verified CIFAR python-version archive.

    Each batch is a pickled dict with ``data`` (N x 3072 uint8, channel-major
    rows) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).  The archive's md5
    (``md5``, default the official one) is checked again here (the file may have been
    swapped since the download), and the batches
    are read with :class:`CifarUnpickler`, which cannot run code.
    """
    spec = CIFAR[dataset]
    want = expected_md5(dataset, md5)
    got = md5_file(archive)
    if got != want:
        raise ChecksumError(
            f"{archive}: md5 {got} does not match the expected {want}"
            f"{_whose_md5(dataset, md5)}; delete it so that it is fetched again"
        )
    out: dict[str, np.ndarray] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for split in ("train", "test"):
            images, labels = [], []
            for member in spec[split]:
                fh = tar.extractfile(member)
                if fh is None:
                    raise ValueError(f"{archive}: member {member} is missing")
                d = _unpickle(fh, f"{archive}: {member}")
                images.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(d[spec["label_key"]], dtype=np.int64))
            out[f"{split}_images"] = np.concatenate(images)
            out[f"{split}_labels"] = np.concatenate(labels)
    return out
