"""Fetching one file over HTTP: resumable, retried, and installed only once its md5 matches.

Bytes go to ``<dest>.part``; a rerun, or a retry after a dropped connection, asks for the
rest with an HTTP ``Range`` header. ``dest`` itself appears only complete and verified.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .io import md5_file


class ChecksumError(ValueError):
    """A downloaded or supplied archive does not have the expected md5."""


def verify_and_install(tmp: Path, dest: Path, md5: str, whose: str = "") -> Path:
    """Rename ``tmp`` onto ``dest`` if its md5 is ``md5``; else remove it and raise
    :class:`ChecksumError` (its message adds ``whose``, where the md5 came from)."""
    got = md5_file(tmp)
    if got != md5:
        tmp.unlink()
        raise ChecksumError(
            f"{dest}: md5 {got} does not match the expected {md5}{whose}; "
            "the partial file was removed"
        )
    os.replace(tmp, dest)
    return dest


def _fetch_into(
    url: str, part: Path, have: int, *, timeout: float, chunk: int, log: Callable[[str], None]
) -> None:
    """One request for ``url`` from byte ``have`` on: appended to ``part`` when the server
    honours the range, else ``part`` is written afresh; a short body is a ConnectionError."""
    req = urllib.request.Request(url, headers={"User-Agent": "curvmia"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", 200)
        mode = "ab" if (have and status == 206) else "wb"
        if have and mode == "wb":
            log(f"{url}: server ignored the range request; starting over")
        elif have:
            log(f"{url}: resuming at byte {have}")
        expected = resp.headers.get("Content-Length")
        got = 0
        with open(part, mode) as fh:
            while block := resp.read(chunk):
                fh.write(block)
                got += len(block)
        if expected is not None and got < int(expected):
            raise ConnectionError(f"connection closed after {got} of {expected} bytes")


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 2.0,
    chunk: int = 1 << 20,
    log: Callable[[str], None] = print,
    whose: str = "",
) -> Path:
    """Download ``url`` to ``dest`` and verify its md5; resume and retry on failure.

    Bytes go to ``dest + '.part'``; a rerun (or a retry after a dropped
    connection) asks the server for the rest with an HTTP ``Range`` header and
    appends, or starts over when the server ignores the range.  ``dest`` appears
    only once the whole file matches ``md5``; a mismatch removes the partial file
    and raises :class:`ChecksumError` (its message adds ``whose``, where the md5 came from).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        have = part.stat().st_size if part.exists() else 0
        try:
            _fetch_into(url, part, have, timeout=timeout, chunk=chunk, log=log)
            return verify_and_install(part, dest, md5, whose)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range past the end: the .part may be complete
                return verify_and_install(part, dest, md5, whose)
            if 400 <= e.code < 500:
                raise RuntimeError(f"{url}: HTTP {e.code} {e.reason}") from e
            last_error = e
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            last_error = e
        log(f"{url}: attempt {attempt}/{retries} failed ({last_error}); retrying")
        time.sleep(backoff * (attempt - 1))
    raise RuntimeError(f"{url}: download failed after {retries} attempts: {last_error}")
