"""The files fusion writes: whole or not at all, never over someone else's file, and the cache folder they
may be rebuilt into; the files it reads whole: regular ones only.

Every file fusion writes (reports, baselines, results, models, caches) goes to a temporary file
beside its target and is renamed over it, so a reader sees the old file or the new one, never a
half-written one, and a crash leaves no stray temporary file behind. ``check_output`` refuses, before
any work, an output that is an input or an existing file of another kind (a recording given as --json).

A file name that is not UTF-8 (``bad\xffname.flac``) reaches Python as a str holding lone surrogates
(``os.fsdecode``). Text keeps them as the name's own bytes (``surrogateescape``) and JSON as ``\udcff``
escapes, which ``json.loads`` turns back into the same str: either way ``os.fsencode`` gives the name back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from fusion.errors import InputError

DANGLING = "it is a symlink that leads nowhere (a missing target or a loop)"
_SURROGATE = re.compile("[\ud800-\udfff]")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def open_regular(path: str | Path) -> IO[bytes]:
    """``path`` opened for reading; ``InputError`` unless it is a regular file (a FIFO would block the open and
    the reads, /dev/zero never ends), checked on the open file so a swap of names cannot slip past."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(path, "not a regular file")
    return os.fdopen(fd, "rb")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a regular file's bytes, read in 4 MiB pieces."""
    sha = hashlib.sha256()
    with open_regular(path) as fh:
        while chunk := fh.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


def cache_dir() -> Path:
    """``$FUSION_CACHE_DIR``, else the per-user cache directory of fusion."""
    if env := os.environ.get("FUSION_CACHE_DIR"):
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("fusion"))


# Each kind of file fusion writes, by how it begins: an existing file that begins otherwise is not fusion's to
# replace (a recording given as --json, notes given as --out).
_KINDS = {
    "json": ("JSON", lambda head: head.lstrip()[:1] == b"{" and not head.startswith(b'{"file":')),
    "report": ("a fusion report", lambda head: head.lstrip()[:1] == b"{" and b'"schema_version"' in head),
    "baseline": ("a fusion baseline", lambda head: head.lstrip()[:1] == b"{" and b'"mean"' in head),
    "html": ("an HTML page", lambda head: head.lstrip()[:14].lower() == b"<!doctype html"),
    "csv": ("a CSV file", lambda head: b"\0" not in head and b"," in head.split(b"\n", 1)[0]),
    "results": ("a fusion batch results file", lambda head: head == b"" or head.startswith(b'{"file":')),
}


def check_output(path: str | Path | None, kind: str, inputs: Iterable[str | Path] = (), make_folder: bool = False,
                 outputs: Iterable[str | Path | None] = ()) -> None:
    """Refuse, before any work, an output path that cannot be written, that is one of ``inputs`` or of the same
    command's other ``outputs``, or that would replace a file of another ``kind`` (see ``_KINDS``) or a special file;
    None and "-" pass. ``make_folder`` creates a missing folder for it."""
    if path is None:
        return
    if str(path) == "-":
        if any(str(other) == "-" for other in outputs if other is not None):
            raise InputError(path, "cannot write it: another output of this command goes to standard output too")
        return
    path = Path(path)
    if any(_same_file(path, other) for other in outputs if other is not None and str(other) != "-"):
        raise InputError(path, "cannot write it: another output of this command goes there too")
    folder = path.parent
    if make_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(path, f"cannot write it: cannot create the folder {folder} ({exc.strerror})") from None
    if path.is_dir():
        raise InputError(path, "cannot write it: it is a directory")
    if path.is_symlink() and not path.exists():
        raise InputError(path, f"cannot write it: {DANGLING}")
    if not folder.is_dir():
        raise InputError(path, f"cannot write it: the folder {folder} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise InputError(path, "cannot write it: permission denied")
    if any(_same_file(path, other) for other in inputs):
        raise InputError(path, "cannot write it: it is one of the inputs")
    if not path.exists():
        return
    what, looks_right = _KINDS[kind]
    if not path.is_file():
        raise InputError(path, "cannot write it: it is not a regular file")
    with path.open("rb") as fh:
        if not looks_right(fh.read(64)):
            raise InputError(path, f"cannot write it: the file there is not {what}; not replacing it")


def _same_file(a: Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links too
    except OSError:  # one of them does not exist (yet), or is a symlink loop
        return os.path.realpath(a) == os.path.realpath(b)


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
        out.write(_encoded(data) if isinstance(data, str) else data)


def _encoded(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte (a results line's "\ud800"): its escape
        return text.encode("utf-8", "backslashreplace")


def json_text(value: object, indent: int | None = None) -> str:
    """``value`` as JSON that is valid UTF-8 whatever file names it holds: readable Korean, lone surrogates
    escaped (``\\udcff``) so the text round-trips through ``json.loads``; NaN and infinity as null, as pydantic
    writes them."""
    text = json.dumps(_finite(value), ensure_ascii=False, indent=indent, separators=None if indent else (",", ":"))
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV table whose text cells a spreadsheet shows as text: a cell starting with ``= + - @``, tab or CR (a file
    named ``=cmd|' -C calc'!A0.flac``) gets a leading ``'`` (OWASP's advice against CSV injection); numbers stay."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in _FORMULA_STARTS else v for v in row])
    return buffer.getvalue()


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
