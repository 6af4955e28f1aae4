"""The batch engine: which inputs need work, which engine runs them, and the results file they end in.

:func:`analyze_many` streams results; :func:`run_batch` (``fusion batch``) resumes and writes them
(see :mod:`fusion.batch`). Engines: this process, a pool of worker processes, or Ray actors.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path

from fusion.batch.dates import read_dates
from fusion.batch.process import die_with_parent
from fusion.batch.results import ResultsFile, read_results, write_csv
from fusion.batch.worker import BatchResult, Item, Worker, batch_version, content_key
from fusion.config import Config, default_config
from fusion.dates import file_time, parse_time, recording_problem, utc
from fusion.errors import InputError
from fusion.files import check_output
from fusion.voice.prosody import resolve_baseline

_LIST_SUFFIXES = {".txt", ".lst", ".list"}


def collect_inputs(spec: str | Path | Sequence[str | Path], config: Config | None = None) -> list[str]:
    """The recordings a spec names: a folder (recursive, by extension), a glob, a list file, one file or a list."""
    if not isinstance(spec, (str, Path)):
        return [str(p) for p in spec]
    extensions = set((config or default_config()).batch.extensions)
    path = Path(spec)
    if path.is_dir():
        # a folder "x.wav" too: its record says so
        return sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in extensions)
    if path.is_file() and path.suffix.lower() in _LIST_SUFFIXES:
        lines = os.fsdecode(path.read_bytes()).splitlines()  # names as the file system holds them, any bytes
        named = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        return [n if Path(n).is_absolute() else str(path.parent / n) for n in named]
    if glob.has_magic(str(spec)) and not path.exists():  # a file named "diary[1].wav" is that file
        found = sorted(p for p in _glob(str(spec)) if Path(p).is_file() or Path(p).suffix.lower() in extensions)
        if not found:
            raise InputError(spec, "the pattern matches no file")
        return found
    return [str(spec)]


def _glob(pattern: str) -> list[str]:
    """The paths ``pattern`` matches, each once: ``**`` does not enter symlinked folders (as a folder input does
    not), since one that points back up would name every file again, without end."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    try:
        return [str(p) for p in Path(*parts[:first]).glob(str(Path(*parts[first:])))]
    except ValueError as exc:  # "**" inside a name
        raise InputError(pattern, f"not a usable pattern ({exc})") from None


def recorded_at(file: str, dates: Mapping[str, datetime] | None = None) -> datetime | None:
    """When ``file`` was recorded: its row of the dates CSV, else its modification time (None: it cannot be read)."""
    if dates and file in dates:
        return dates[file]
    try:
        return file_time(file)
    except (OSError, ValueError):
        return None


def _dates(dates: str | Path | Mapping[str, datetime] | None, files: list[str]) -> dict[str, datetime]:
    if dates is None:
        return {}
    if isinstance(dates, Mapping):
        given = {f: parse_time(w) if isinstance(w, str) else utc(w) for f, w in dates.items()}
        for f, moment in given.items():
            if problem := recording_problem(moment):
                raise ValueError(f"recorded_at of {f}: {problem}")
        return given
    return read_dates(dates, files)


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
        from fusion.batch.ray_engine import run_ray

        yield from run_ray(_chunks(items, config.batch.files_per_chunk), config, baseline, address)
    elif engine != "local":
        raise ValueError(f"unknown engine {engine!r} (use 'local' or 'ray')")
    elif workers <= 1 or len(items) <= config.batch.files_per_chunk:
        yield from Worker(config).run(items, baseline)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_process,
                                 initargs=(config.model_dump_json(), max(1, (os.cpu_count() or 1) // workers),
                                           os.getpid())) as pool:
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
    dates: str | Path | Mapping[str, datetime] | None = None,
) -> Iterator[BatchResult]:
    """Analyse many recordings, streaming one :class:`BatchResult` per input (errors are results too).

    ``sources`` is a folder, a glob, a list file or a sequence of paths. Results come chunk by chunk
    (``[batch] files_per_chunk``), in input order with the local engine of one worker. ``dates``: a dates
    CSV (:mod:`fusion.batch.dates`) or a mapping input → recorded_at; other inputs are dated by their file's time.

    >>> for result in analyze_many("recordings/"):            # doctest: +SKIP
    ...     print(result.file, result.report.text.top if result.ok else result.error_kind)
    """
    config = config or default_config()
    files = collect_inputs(sources, config)
    when = _dates(dates, files)
    items = [(i, f, None, recorded_at(f, when)) for i, f in enumerate(files)]
    for chunk in _engine(items, config, baseline, workers or config.batch.workers, engine, address):
        for _, record in chunk:
            yield BatchResult.from_record(record)


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_failed: int = 0   # skipped inputs whose earlier record is an error (see --retry-failed)
    redated: int = 0          # skipped inputs whose line was given this run's recorded_at
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
                f"{f' ({self.redated} given a new date)' if self.redated else ''}"
                f" of {self.total}; audio {self.audio_s / 60:.1f} min in {self.wall_s:.1f} s, "
                f"real-time factor {self.rtf:.3f}")


@dataclass
class _Plan:
    todo: list[Item]                # inputs to analyse, one per distinct content
    copies: list[dict]              # lines for inputs whose content already has a line under another path
    twins: dict[str, list[tuple[str, datetime | None]]]  # key → the other inputs of that content (and their
    #                                                         recorded_at), given a copy of its line


def _json_time(moment: datetime | None) -> str | None:
    """A time as a report's JSON holds it (pydantic's form, so an unchanged date compares equal)."""
    from pydantic_core import to_jsonable_python

    return None if moment is None else to_jsonable_python(moment)


def _same_time(stored: str | None, moment: datetime | None) -> bool:
    if stored is None or moment is None:
        return stored is None and moment is None
    return parse_time(stored) == moment


def _plan(files: list[str], results: ResultsFile, version: str, retry_failed: bool, summary: BatchSummary,
          dates: Mapping[str, datetime]) -> _Plan:
    """What each input needs: nothing (its line is there), a copy of its content's line (moved or identical
    file) or an analysis; drops (atomically) earlier records that are stale or are failures to retry.

    The date is not part of the key (it changes nothing the models compute): a line whose report holds
    another recorded_at than this run gives its file (a changed dates CSV, a touched file) is rewritten with
    the new one, without a second analysis."""
    keys = {f: content_key(f, version) for f in files}
    when = {f: recorded_at(f, dates) for f in files}
    records = read_results(results.path)
    wanted = set(keys.values())
    keep = [r for r in records if not (r["file"] in keys and r["key"] != keys[r["file"]])
            and not (retry_failed and r["status"] == "error" and r["key"] in wanted)]
    redated = [_dated(r, when[r["file"]]) if r["file"] in keys and r["status"] == "ok"
               and not _same_time(r["report"].get("recorded_at"), when[r["file"]]) else r for r in keep]
    summary.redated = sum(a is not b for a, b in zip(redated, keep))
    if len(keep) < len(records) or summary.redated:
        results.keep_only(redated)
    keep = redated
    lines = {(r["file"], r["key"]): r["status"] for r in keep}
    by_key = {r["key"]: r for r in keep}
    plan = _Plan([], [], {})
    for i, f in enumerate(files):
        key = keys[f]
        if (f, key) in lines:
            summary.skipped += 1
            summary.skipped_failed += lines[(f, key)] == "error"
        elif key in by_key:
            plan.copies.append(_for_file(by_key[key], f, when[f]))
        elif key in plan.twins:
            plan.twins[key].append((f, when[f]))  # the same content twice in one run is analysed once
        else:
            plan.todo.append((i, f, key, when[f]))
            plan.twins[key] = []
    return plan


def _dated(record: dict, moment: datetime | None) -> dict:
    return {**record, "report": {**record["report"], "recorded_at": _json_time(moment)}}


def _for_file(record: dict, file: str, moment: datetime | None) -> dict:
    """The line of the same content under another path, retold for ``file`` (recorded at ``moment``)."""
    out = {**record, "file": file}
    if record["status"] == "ok":
        out["report"] = {**record["report"], "source": file, "recorded_at": _json_time(moment)}
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
    dates: str | Path | Mapping[str, datetime] | None = None,
) -> BatchSummary:
    """Analyse every input into ``out`` (JSONL), resuming a previous run; optional CSV summary.

    Each report's ``recorded_at`` is the input's row of ``dates`` (a dates CSV, :mod:`fusion.batch.dates`,
    checked whole before any work; or a mapping input → time), else its file's modification time."""
    from fusion.batch.progress import BatchProgress

    config = config or default_config()
    t0 = time.perf_counter()
    files = list(dict.fromkeys(collect_inputs(sources, config)))
    given = _dates(dates, files)
    summary = BatchSummary(total=len(files))
    named = [p for p in (sources, dates) if isinstance(p, (str, Path))]  # a list file, a dates CSV
    check_output(csv_path, "csv", [out, *files, *named], make_folder=True)  # before the work, not after it
    if baseline is not None:  # a baseline that cannot be read is refused once, not once per file
        resolve_baseline(baseline, config)
    results = ResultsFile(out, fsync=config.batch.fsync)
    try:
        plan = _plan(files, results, batch_version(config, baseline), retry_failed, summary, given)
        for record in plan.copies:
            results.append(record)
            _count(summary, record)
        with BatchProgress(len(plan.todo), enabled=progress) as bar:
            for chunk in _engine(plan.todo, config, baseline, workers or config.batch.workers, engine, address):
                for _, record in chunk:
                    for line in (record, *(_for_file(record, f, w) for f, w in plan.twins[record["key"]])):
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
