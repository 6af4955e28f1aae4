"""Many recordings in, one JSON line each out: resumable, crash-safe, errors as records.

:func:`analyze_many` streams :class:`BatchResult` values; :func:`run_batch` (``fusion batch``)
writes them to a JSONL file that a kill -9 at any moment leaves valid: each line goes out in
one ``os.write`` and is fsynced, and a torn last line is cut off before the next run appends.
Each input gets its own line, keyed by its path and its content's key (sha256 + ``Config.fingerprint()``): a rerun
skips an input whose line is there, and an input whose content already has a line under another path (a moved
or identical file) gets a copy of it without a second analysis.

Inside a worker the models are loaded once; the next recordings decode on a thread while STT
runs on the current one, and the sentences of a chunk of recordings share one text-model call.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from fusion.batch_io import ResultsFile, read_results, write_csv
from fusion.batch_process import die_with_parent, share_cores, tune_malloc
from fusion.config import Config, default_config
from fusion.errors import FusionError
from fusion.report import DiaryReport

Item = tuple[int, str, str | None]  # (input index, file, key or None: computed by the worker)
_LIST_SUFFIXES = {".txt", ".lst", ".list"}


# ---- inputs and keys -------------------------------------------------------------------------------------------

def collect_inputs(spec: str | Path | Sequence[str | Path], config: Config | None = None) -> list[str]:
    """The recordings a spec names: a folder (recursive, by extension), a glob, a list file, one file or a list."""
    if not isinstance(spec, (str, Path)):
        return [str(p) for p in spec]
    extensions = set((config or default_config()).batch.extensions)
    path = Path(spec)
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in extensions)  # a folder "x.wav" too: its record says so
    if path.is_file() and path.suffix.lower() in _LIST_SUFFIXES:
        lines = path.read_text(encoding="utf-8").splitlines()
        named = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        return [n if Path(n).is_absolute() else str(path.parent / n) for n in named]
    if glob.has_magic(str(spec)):
        return sorted(p for p in glob.glob(str(spec), recursive=True) if Path(p).is_file() or Path(p).suffix.lower() in extensions)
    return [str(spec)]


def content_key(file: str, version: str) -> str:
    """``sha256-of-content:version``; a file that cannot be read is keyed by its path, so it is retried once it can."""
    digest = hashlib.sha256()
    try:
        with open(file, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return f"path:{hashlib.sha256(os.path.abspath(file).encode()).hexdigest()}:{version}"
    return f"{digest.hexdigest()}:{version}"


# ---- results ---------------------------------------------------------------------------------------------------

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
    def from_record(cls, record: dict) -> "BatchResult":
        if record["status"] == "ok":
            return cls(record["file"], record["key"], DiaryReport.model_validate(record["report"]))
        return cls(record["file"], record["key"], None, record["error"]["kind"], record["error"]["message"])


def _ok(file: str, key: str, report: DiaryReport) -> dict:
    return {"file": file, "key": key, "status": "ok", "report": report.model_dump(mode="json")}


def _failed(file: str, key: str, exc: BaseException) -> dict:
    kind = exc.kind if isinstance(exc, FusionError) else "internal"
    message = str(exc) if isinstance(exc, FusionError) else f"{exc.__class__.__name__}: {exc}"
    return {"file": file, "key": key, "status": "error", "error": {"kind": kind, "message": message}}


# ---- the worker: models once, decode ahead, text batched across files ----------------------------------------

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
        self.version = self.config.fingerprint()

    def _decode(self, item: Item):
        from fusion.audio import load_audio

        t0 = time.perf_counter()
        audio = load_audio(item[1], self.config.audio_input.sample_rate,
                           max_duration_s=self.config.audio_input.max_duration_s)
        return audio, time.perf_counter() - t0

    def run(self, items: Iterable[Item], baseline: str | None = None) -> Iterator[list[tuple[int, dict]]]:
        """Chunks of ``(index, record)``, in input order within a chunk, as soon as each chunk is finished."""
        cfg = self.config.batch
        heard, done, audio_s = [], [], 0.0
        for (index, file, key), future in _prefetch(self._decode, items, cfg.prefetch):
            key = key or content_key(file, self.version)
            try:
                audio, decode_s = future.result()
                h = self.pipeline.hear(audio)
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


_PROCESS_WORKER: Worker | None = None


def _init_process(config_json: str, threads: int, parent: int) -> None:
    global _PROCESS_WORKER
    die_with_parent(parent)
    _PROCESS_WORKER = Worker(Config.model_validate_json(config_json), threads)


def _process_chunk(items: list[Item], baseline: str | None) -> list[tuple[int, dict]]:
    return [r for chunk in _PROCESS_WORKER.run(items, baseline) for r in chunk]


def _chunks(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _engine(items: list[Item], config: Config, baseline: str | None, workers: int, engine: str,
            address: str | None) -> Iterator[list[tuple[int, dict]]]:
    """Finished chunks from the chosen engine: this process, a process pool, or Ray actors."""
    if engine == "ray":
        from fusion.batch_ray import run_ray

        yield from run_ray(_chunks(items, config.batch.files_per_chunk), config, baseline, address)
    elif engine != "local":
        raise ValueError(f"unknown engine {engine!r} (use 'local' or 'ray')")
    elif workers <= 1 or len(items) <= config.batch.files_per_chunk:
        yield from Worker(config).run(items, baseline)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_process,
                                 initargs=(config.model_dump_json(), max(1, (os.cpu_count() or 1) // workers), os.getpid())) as pool:
            futures = [pool.submit(_process_chunk, chunk, baseline)
                       for chunk in _chunks(items, config.batch.files_per_chunk)]
            for future in as_completed(futures):
                yield future.result()


def analyze_many(
    sources: str | Path | Sequence[str | Path],
    *,
    baseline: str | None = None,
    config: Config | None = None,
    workers: int | None = None,
    engine: str = "local",
    address: str | None = None,
) -> Iterator[BatchResult]:
    """Analyse many recordings, streaming one :class:`BatchResult` per input (errors are results too).

    ``sources`` is a folder, a glob, a list file or a sequence of paths. Results come chunk by chunk
    (``[batch] files_per_chunk``), in input order with the local engine of one worker.

    >>> for result in analyze_many("recordings/"):            # doctest: +SKIP
    ...     print(result.file, result.report.text.top if result.ok else result.error_kind)
    """
    config = config or default_config()
    items = [(i, f, None) for i, f in enumerate(collect_inputs(sources, config))]
    for chunk in _engine(items, config, baseline, workers or config.batch.workers, engine, address):
        for _, record in chunk:
            yield BatchResult.from_record(record)


# ---- the job ---------------------------------------------------------------------------------------------------

@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_failed: int = 0   # skipped inputs whose earlier record is an error (see --retry-failed)
    audio_s: float = 0.0
    wall_s: float = 0.0

    @property
    def any_failed(self) -> bool:
        return self.failed + self.skipped_failed > 0

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s else 0.0

    def line(self) -> str:
        return (f"done {self.done}, failed {self.failed}, skipped {self.skipped}"
                f"{f' ({self.skipped_failed} failed earlier: --retry-failed)' if self.skipped_failed else ''}"
                f" of {self.total}; audio {self.audio_s / 60:.1f} min in {self.wall_s:.1f} s, real-time factor {self.rtf:.3f}")


@dataclass
class _Plan:
    todo: list[Item]                # inputs to analyse, one per distinct content
    copies: list[dict]              # lines for inputs whose content already has a line under another path
    twins: dict[str, list[str]]     # key → the other inputs of that content, given a copy of its line


def _plan(files: list[str], results: ResultsFile, version: str, retry_failed: bool, summary: BatchSummary) -> _Plan:
    """What each input needs: nothing (its line is there), a copy of its content's line (moved or identical
    file) or an analysis; drops (atomically) earlier records that are stale or are failures to retry."""
    keys = {f: content_key(f, version) for f in files}
    records = read_results(results.path)
    wanted = set(keys.values())
    keep = [r for r in records if not (r["file"] in keys and r["key"] != keys[r["file"]])
            and not (retry_failed and r["status"] == "error" and r["key"] in wanted)]
    if len(keep) < len(records):
        results.keep_only(keep)
    lines = {(r["file"], r["key"]): r["status"] for r in keep}
    by_key = {r["key"]: r for r in keep}
    plan = _Plan([], [], {})
    for i, f in enumerate(files):
        key = keys[f]
        if (f, key) in lines:
            summary.skipped += 1
            summary.skipped_failed += lines[(f, key)] == "error"
        elif key in by_key:
            plan.copies.append(_for_file(by_key[key], f))
        elif key in plan.twins:
            plan.twins[key].append(f)  # the same content twice in one run is analysed once
        else:
            plan.todo.append((i, f, key))
            plan.twins[key] = []
    return plan


def _for_file(record: dict, file: str) -> dict:
    """The line of the same content under another path, retold for ``file``."""
    out = {**record, "file": file}
    if record["status"] == "ok":
        out["report"] = {**record["report"], "source": file}
    else:
        out["error"] = {**record["error"], "message": record["error"]["message"].replace(record["file"], file)}
    return out


def _count(summary: BatchSummary, record: dict) -> None:
    summary.done += record["status"] == "ok"
    summary.failed += record["status"] == "error"


def run_batch(
    sources: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    csv_path: str | Path | None = None,
    baseline: str | None = None,
    config: Config | None = None,
    workers: int | None = None,
    engine: str = "local",
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> BatchSummary:
    """Analyse every input into ``out`` (JSONL), resuming a previous run; optional CSV summary."""
    from fusion.batch_progress import BatchProgress

    config = config or default_config()
    t0 = time.perf_counter()
    files = list(dict.fromkeys(collect_inputs(sources, config)))
    summary = BatchSummary(total=len(files))
    results = ResultsFile(out, fsync=config.batch.fsync)
    try:
        plan = _plan(files, results, config.fingerprint(), retry_failed, summary)
        for record in plan.copies:
            results.append(record)
            _count(summary, record)
        with BatchProgress(len(plan.todo), enabled=progress) as bar:
            for chunk in _engine(plan.todo, config, baseline, workers or config.batch.workers, engine, address):
                for _, record in chunk:
                    for line in (record, *(_for_file(record, f) for f in plan.twins[record["key"]])):
                        results.append(line)
                        _count(summary, line)
                    seconds = record["report"]["duration_s"] if record["status"] == "ok" else 0.0
                    summary.audio_s += seconds
                    bar.advance(seconds)
    finally:
        results.close()
    if csv_path is not None:
        write_csv(read_results(out), csv_path)
    summary.wall_s = time.perf_counter() - t0
    return summary


__all__ = ["analyze_many", "run_batch", "collect_inputs", "read_results", "write_csv", "BatchResult", "BatchSummary",
           "ResultsFile", "Worker", "content_key"]
