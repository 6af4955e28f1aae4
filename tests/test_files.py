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
