"""The service's analysis jobs: a queue of stored uploads run on worker threads that share one set of models.

A job is claimed in the database before it runs, by one atomic update, so two workers (of one process or of
several sharing the database and the storage folder) never run the same upload. Each process holds an flock on
its own mark in ``workers/`` while it lives, and the claim names it: a starting process re-queues the queued jobs
and those whose process is gone (the kernel dropped its lock), at most ``[server] max_attempts`` times, and leaves
a live process's running jobs to it.

A finished job's recording is deleted at once, or ``[server] keep_recordings_days`` later (checked at each start
and every ``EXPIRE_EVERY_S``): the report and the diary's voice statistics are all that later work reads.

A job is measured against the user's baseline of the moment (``fusion.service.baselines``). Once done it keeps
the diary's compact row (``fusion.service.tables``: its timeline entry and ``VoiceStats``: the prosody taken from
the report, nothing measured again) and carries the drift alert when the user's diaries up to its recording time
raise it, read from their compact rows; then the user's ``personal-auto`` baseline is refreshed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

from fusion.audio import load_audio
from fusion.config import Config
from fusion.errors import FusionError, InputError
from fusion.history import entry, trend_alert
from fusion.report import DiaryReport, TrendAlert
from fusion.service.baselines import current, refresh_within
from fusion.service.store import RUNNING, Store, entry_json
from fusion.service.tables import Analysis
from fusion.voice.prosody import Prosody, VoiceStats

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 3600.0  # a kept recording outlives keep_recordings_days by at most this


class Workers:
    """A queue of analysis ids run on worker threads; the models load once and are shared."""

    def __init__(self, store: Store, config: Config, root: Path, analyze: Callable[..., DiaryReport]):
        self.store, self.config, self.analyze = store, config, analyze
        self.uploads, self.marks = root / "uploads", root / "workers"
        self.name = uuid.uuid4().hex  # this process, in the claims it makes and its mark's name
        self._mark: int | None = None
        self.pool = ThreadPoolExecutor(config.server.workers, thread_name_prefix="fusion-worker")
        self._first = threading.Lock()  # the first job loads the models; the others wait instead of loading twice
        self._warm = False
        self._closing = threading.Event()
        threading.Thread(target=self._expire_every, name="fusion-expire", daemon=True).start()

    def submit(self, analysis_id: str) -> None:
        self.pool.submit(self._run, analysis_id)

    def recover(self) -> None:
        """Mark this process alive, then run again the jobs left queued and those running in a process that is gone,
        unless they already failed it too often; the recordings of finished jobs past their keeping time, and those
        of no analysis, go, and so do the marks of processes that are gone (one that failed to start leaves its own)."""
        self._mark = _hold(self.marks / self.name)
        for mark in self.marks.iterdir():
            if mark.is_file() and not mark.is_symlink():  # nothing else there is a mark
                _alive(self.marks, mark.name)  # removes it unless its process holds it
        self.expire()
        known = self.store.analysis_ids()
        for path in self.uploads.iterdir():  # placed by an upload killed before its row was written
            if path.name not in known:
                path.unlink(missing_ok=True)
        for row in self.store.unfinished():
            if row.status == RUNNING and _alive(self.marks, row.worker):
                continue  # another live process runs it
            if not (self.uploads / row.id).is_file():
                self.store.fail(row, "the recording was lost while the server restarted; please upload it again")
            elif row.attempts >= self.config.server.max_attempts:
                self.store.fail(row, f"the server stopped during this analysis {row.attempts} times; giving up")
            elif self.store.requeue(row):
                log.info("re-queueing analysis %s left %s by a previous server", row.id, row.status)
                self.submit(row.id)

    def close(self) -> None:
        """Stop taking jobs; this process's running jobs are then another process's to run again."""
        self._closing.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._mark is not None:
            (self.marks / self.name).unlink(missing_ok=True)
            os.close(self._mark)
            self._mark = None

    def expire(self) -> int:
        """Delete the recordings of analyses finished more than ``[server] keep_recordings_days`` ago; returns how
        many went."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=self.config.server.keep_recordings_days)
        gone = 0
        for analysis_id in self.store.finished_before(cutoff):
            if (path := self.uploads / analysis_id).is_file():
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def _expire_every(self) -> None:
        while not self._closing.wait(EXPIRE_EVERY_S):
            try:
                self.expire()
            except Exception:  # the next round tries again
                log.exception("the recordings of finished analyses could not be expired")

    def _run(self, analysis_id: str) -> None:
        claim = self.store.claim(analysis_id, self.name)
        row = self.store.get(analysis_id) if claim else None
        if row is None:
            return  # deleted, or already taken
        if self._warm:
            finished = self._analyse(row, claim)
        else:
            with self._first:
                finished = self._analyse(row, claim)
                self._warm = True
        if finished and self.config.server.keep_recordings_days <= 0:
            (self.uploads / row.id).unlink(missing_ok=True)

    def _analyse(self, row: Analysis, claim: str) -> bool:
        """Run the job and store its result; False when the job was deleted or re-claimed meanwhile."""
        config = self.config
        if row.language and row.language != config.stt.language:
            config = config.with_updates(stt={"language": row.language})
        try:
            audio = load_audio(self.uploads / row.id, max_duration_s=config.server.max_duration_s)
            baseline = row.gender or current(self.store, row.user_id, config)[0]
            report = self.analyze(audio, transcript=row.transcript, baseline=baseline, recorded_at=row.when,
                                  config=config)
            report = report.model_copy(update={"source": row.filename})
            stats = _stats(report)
            if (alert := self._trend(row, report)) is not None:
                report = report.model_copy(update={"trend_alerts": [alert]})
            report_json, row_json = report.to_json(None), entry_json(row.id, report, row.when)
        except InputError as exc:
            return self.store.finish(row.id, claim, error=f"bad recording: {exc.problem}")
        except FusionError as exc:
            return self.store.finish(row.id, claim, error=f"{exc.kind}: {exc}")
        except Exception:
            log.exception("analysis %s failed", row.id)
            return self.store.finish(row.id, claim,
                                     error="internal error while analysing (details are in the server log)")
        refresh = None if stats is None else partial(refresh_within, store=self.store, user_id=row.user_id,
                                                      config=config)
        return self.store.finish(row.id, claim, report_json=report_json, voice_stats=stats, entry_json=row_json,
                                 then=refresh)

    def _trend(self, row: Analysis, report: DiaryReport) -> TrendAlert | None:
        """The drift alert over the user's done diaries recorded up to this one (this one last), read from their
        compact rows, only as far back as the alert looks; a history that cannot be read is logged and leaves this
        diary's own report as it is."""
        cfg = self.config.history
        try:
            earlier = self.store.entries_before(row.user_id, row.when, cfg.window_days, cfg.max_usual, but=row.id)
            return trend_alert([*earlier, entry(row.id, report, row.when)], cfg)
        except Exception:
            log.exception("analysis %s: the drift alert could not be computed from the user's history", row.id)
            return None


def _hold(path: Path) -> int:
    """Create and lock ``path``, the mark that this process is alive: the kernel drops the lock however the process
    ends. Returns the descriptor to keep open."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _alive(marks: Path, worker: str | None) -> bool:
    """Whether the process named ``worker`` still holds its mark (a gone process's mark is removed)."""
    if not worker:
        return False
    try:
        fd = os.open(marks / worker, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    (marks / worker).unlink(missing_ok=True)
    return False


def _stats(report: DiaryReport) -> str | None:
    """The diary's ``VoiceStats`` as JSON: its prosody read back from the report (rounded to 3 decimals there, far
    below what a baseline's median notices), nothing measured again; None for a diary without voiced audio."""
    p = report.voice.prosody
    if report.voice.top is None or p is None:
        return None
    measured = Prosody(*(math.nan if v is None else v for v in (p.pitch_hz, p.energy_db, p.speaking_rate)))
    return json.dumps(VoiceStats(None, measured).to_dict())
