"""The files fusion writes: whole or not at all, and the cache folder they may be rebuilt into.

Every file fusion writes (reports, baselines, results, models, caches) goes to a temporary file
beside its target and is renamed over it, so a reader sees the old file or the new one, never a
half-written one, and a crash leaves no stray temporary file behind.

A file name that is not UTF-8 (``bad\xffname.flac``) reaches Python as a str holding lone surrogates
(``os.fsdecode``). Text keeps them as the name's own bytes (``surrogateescape``) and JSON as ``\udcff``
escapes, which ``json.loads`` turns back into the same str: either way ``os.fsencode`` gives the name back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_SURROGATE = re.compile("[\ud800-\udfff]")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB pieces."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


def cache_dir() -> Path:
    """``$FUSION_CACHE_DIR``, else the per-user cache directory of fusion."""
    if env := os.environ.get("FUSION_CACHE_DIR"):
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("fusion"))


@contextmanager
def atomic_writer(dest: str | Path, durable: bool = False) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``dest`` when the block ends without an error.

    ``durable`` also fsyncs the file and its folder, so the new content survives a power cut.
    """
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if durable:
        _fsync_dir(dest.parent)


def atomic_write(dest: str | Path, data: bytes | str, durable: bool = False) -> None:
    """Replace ``dest`` with ``data`` all at once; text goes out as UTF-8, a non-UTF-8 file name in it as its bytes."""
    with atomic_writer(dest, durable) as out:
        out.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)


def json_text(value: object, indent: int | None = None) -> str:
    """``value`` as JSON that is valid UTF-8 whatever file names it holds: readable Korean, lone surrogates
    escaped (``\\udcff``) so the text round-trips through ``json.loads``; NaN and infinity as null, as pydantic
    writes them."""
    text = json.dumps(_finite(value), ensure_ascii=False, indent=indent, separators=None if indent else (",", ":"))
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
