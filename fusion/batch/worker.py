"""One batch worker: the pipeline loaded once, recordings decoded ahead, text batched across files.

The same :class:`Worker` runs in this process, in each process of a pool and in each Ray actor;
it turns recordings into result records (a report, or an error that names the file), keyed by
:func:`content_key`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from fusion.batch.process import share_cores, tune_malloc
from fusion.config import Config, default_config
from fusion.errors import FusionError, InputError
from fusion.files import file_sha256
from fusion.report import DiaryReport

# (input index, file, key or None: computed by the worker, recorded_at or None: the file's modification time).
# The worker decodes ahead and hands the pipeline decoded audio, which has no file time of its own, so the
# time travels with the item.
Item = tuple[int, str, str | None, datetime | None]


def content_key(file: str, version: str) -> str:
    """``sha256-of-content:version``; a file that cannot be read, or is no regular file (a FIFO, /dev/zero), is
    keyed by its path, so its error record is made without reading it, and it is retried once it can be read."""
    try:
        return f"{file_sha256(file)}:{version}"
    except (OSError, InputError):
        return f"path:{hashlib.sha256(os.fsencode(os.path.abspath(file))).hexdigest()}:{version}"


def batch_version(config: Config, baseline: str | None) -> str:
    """What a result's key is versioned by: the configuration's fingerprint and, when one is asked for, the baseline
    (a baseline JSON by its content, so an edited one is noticed), since both change a report."""
    version = config.fingerprint()
    if baseline is None:
        return version
    if baseline == "auto" or baseline in config.audio.baselines:
        return f"{version}+{baseline}"
    try:
        return f"{version}+{file_sha256(baseline)[:16]}"
    except (OSError, InputError):  # the batch's start says why it cannot be read
        return f"{version}+{baseline}"


@dataclass(frozen=True)
class BatchResult:
    """One input's outcome: a report, or the error kind and message (``ok`` tells which)."""

    file: str
    key: str
    report: DiaryReport | None = None
    error_kind: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.report is not None

    @classmethod
    def from_record(cls, record: dict) -> BatchResult:
        if record["status"] == "ok":
            return cls(record["file"], record["key"], DiaryReport.model_validate(record["report"]))
        return cls(record["file"], record["key"], None, record["error"]["kind"], record["error"]["message"])


def _ok(file: str, key: str, report: DiaryReport) -> dict:
    return {"file": file, "key": key, "status": "ok", "report": report.model_dump(mode="json")}


def _failed(file: str, key: str, exc: BaseException) -> dict:
    kind = exc.kind if isinstance(exc, FusionError) else "internal"
    message = str(exc) if isinstance(exc, FusionError) else f"{exc.__class__.__name__}: {exc}"
    return {"file": file, "key": key, "status": "error", "error": {"kind": kind, "message": message}}


def _prefetch(fn, items: Iterable, depth: int) -> Iterator[tuple[object, object]]:
    """``(item, future of fn(item))`` in order, with up to ``depth`` items running ahead on a thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusion-decode") as pool:
        it = iter(items)
        queue = deque((item, pool.submit(fn, item)) for item in islice(it, max(depth, 1)))
        while queue:
            item, future = queue.popleft()
            if (nxt := next(it, None)) is not None:
                queue.append((nxt, pool.submit(fn, nxt)))
            yield item, future


class Worker:
    """The loaded pipeline of one process (or Ray actor) and the chunked loop over recordings.

    ``threads``: the cores this worker may use when it shares the machine with others (None: all).
    """

    def __init__(self, config: Config | None = None, threads: int | None = None):
        from fusion.pipeline import load_pipeline

        self.config = share_cores(config or default_config(), threads)
        tune_malloc(self.config.batch.malloc_arenas, self.config.batch.malloc_mmap_threshold)
        self.pipeline = load_pipeline(self.config)

    def _decode(self, item: Item):
        from fusion.audio import load_audio

        t0 = time.perf_counter()
        audio = load_audio(item[1], max_duration_s=self.config.audio_input.max_duration_s)
        return audio, time.perf_counter() - t0

    def run(self, items: Iterable[Item], baseline: str | None = None) -> Iterator[list[tuple[int, dict]]]:
        """Chunks of ``(index, record)``, in input order within a chunk, as soon as each chunk is finished."""
        from fusion.dates import file_time

        cfg, version = self.config.batch, batch_version(self.config, baseline)
        heard, done, audio_s = [], [], 0.0
        for (index, file, key, when), future in _prefetch(self._decode, items, cfg.prefetch):
            key = key or content_key(file, version)
            try:
                audio, decode_s = future.result()
                h = self.pipeline.hear(audio, recorded_at=when or file_time(file))
                h.timer.stages["decode"] = round(h.timer.stages["decode"] + decode_s, 4)
            except Exception as exc:  # a bad file is a record, never the end of the batch
                done.append((index, _failed(file, key, exc)))
            else:
                heard.append((index, file, key, h))
                audio_s += h.audio.duration
            if len(heard) >= cfg.files_per_chunk or audio_s >= cfg.chunk_audio_s or len(done) >= cfg.files_per_chunk:
                yield sorted(done + self._finish(heard, baseline))
                heard, done, audio_s = [], [], 0.0
        if heard or done:
            yield sorted(done + self._finish(heard, baseline))

    def _finish(self, heard: list, baseline: str | None) -> list[tuple[int, dict]]:
        if not heard:
            return []
        try:
            reports = self.pipeline.analyze_batch([h for *_, h in heard], baseline=baseline)
        except Exception as exc:
            if len(heard) == 1:
                index, file, key, _ = heard[0]
                return [(index, _failed(file, key, exc))]
            return [r for one in heard for r in self._finish([one], baseline)]  # isolate the one that fails
        return [(index, _ok(file, key, report)) for (index, file, key, _), report in zip(heard, reports)]
