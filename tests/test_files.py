"""fusion.files: a write replaces the target whole or leaves it as it was, with no temporary file behind."""

from __future__ import annotations

import pytest

from fusion.files import atomic_write, atomic_writer, cache_dir


def test_atomic_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    atomic_write(target, "새 내용", durable=True)
    assert target.read_text(encoding="utf-8") == "새 내용"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "results.jsonl"
    target.write_bytes(b"complete\n")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as out:
            out.write(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path


def test_text_with_a_lone_surrogate_that_stands_for_no_byte_is_written_as_its_escape(tmp_path):
    """A results line may hold "\\ud800" in a file name; ``fusion history --csv/--html`` once failed to encode it."""
    atomic_write(tmp_path / "a.csv", "file\na\ud800.wav\n")
    assert (tmp_path / "a.csv").read_bytes() == b"file\na\\ud800.wav\n"
    atomic_write(tmp_path / "b.csv", "file\na\udcff.wav\n")
    assert (tmp_path / "b.csv").read_bytes() == b"file\na\xff.wav\n", "a non-UTF-8 name's own byte, as before"
