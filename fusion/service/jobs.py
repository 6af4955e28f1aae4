"""The service's analysis jobs: a queue of stored uploads run on worker threads that share one set of models.

A job is claimed in the database before it runs, so a restart re-queues what was left unfinished
(at most ``[server] max_attempts`` times) and two workers never run the same upload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fusion.audio import load_audio
from fusion.config import Config
from fusion.errors import FusionError, InputError
from fusion.report import DiaryReport
from fusion.service.store import Analysis, Store

log = logging.getLogger(__name__)


class Workers:
    """A queue of analysis ids run on worker threads; the models load once and are shared."""

    def __init__(self, store: Store, config: Config, uploads: Path, analyze: Callable[..., DiaryReport]):
        self.store, self.config, self.uploads, self.analyze = store, config, uploads, analyze
        self.pool = ThreadPoolExecutor(config.server.workers, thread_name_prefix="fusion-worker")
        self._first = threading.Lock()  # the first job loads the models; the others wait instead of loading twice
        self._warm = False

    def submit(self, analysis_id: str) -> None:
        self.pool.submit(self._run, analysis_id)

    def recover(self) -> None:
        """Jobs a previous process left unfinished run again, unless they already failed it too often."""
        for row in self.store.unfinished():
            if not (self.uploads / row.id).is_file():
                self.store.fail(row.id, "the recording was lost while the server restarted; please upload it again")
            elif row.attempts >= self.config.server.max_attempts:
                self.store.fail(row.id, f"the server stopped during this analysis {row.attempts} times; giving up")
            else:
                log.info("re-queueing analysis %s left %s by a previous server", row.id, row.status)
                self.store.requeue(row.id)
                self.submit(row.id)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, analysis_id: str) -> None:
        claim = self.store.claim(analysis_id)
        row = self.store.get(analysis_id) if claim else None
        if row is None:
            return  # deleted, or already taken
        if self._warm:
            self._analyse(row, claim)
            return
        with self._first:
            self._analyse(row, claim)
            self._warm = True

    def _analyse(self, row: Analysis, claim: str) -> None:
        config = self.config
        if row.language and row.language != config.stt.language:
            config = config.with_updates(stt={"language": row.language})
        try:
            audio = load_audio(self.uploads / row.id, config.audio_input.sample_rate,
                               max_duration_s=config.server.max_duration_s)
            report = self.analyze(audio, transcript=row.transcript, baseline=row.gender, config=config)
            report_json = report.model_copy(update={"source": row.filename}).to_json(None)
        except InputError as exc:
            self.store.finish(row.id, claim, error=f"bad recording: {exc.problem}")
        except FusionError as exc:
            self.store.finish(row.id, claim, error=f"{exc.kind}: {exc}")
        except Exception:
            log.exception("analysis %s failed", row.id)
            self.store.finish(row.id, claim, error="internal error while analysing (details are in the server log)")
        else:
            self.store.finish(row.id, claim, report_json=report_json)
