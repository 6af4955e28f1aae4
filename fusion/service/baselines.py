"""A user's neutral baseline in the service: which one their next diary is measured against, and the automatic
one built from their own diaries.

A job's baseline is, in this order: the ``gender`` its upload named; the user's latest hand-made baseline
(``POST /v1/baseline``, kind ``personal``); their latest ``personal-auto`` one; the config's ``[audio] baseline``
("auto": male or female by the diary's pitch). ``personal-auto`` is built (``fusion.voice.prosody.auto_baseline``:
median prosody) from the ``VoiceStats`` of the user's most recently recorded ``[history] max_diaries`` done diaries
once there are ``min_diaries`` of them, and stored as a new version whenever that set of diaries changes: in the
transaction that marks a diary done or deletes it, so whoever sees the diary done (or gone) sees its baseline.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timezone

from fastapi import HTTPException
from sqlalchemy.orm import Session

from fusion.config import Config
from fusion.service.schemas import BaselineInfo
from fusion.service.store import PERSONAL, PERSONAL_AUTO, Store
from fusion.service.tables import Baseline
from fusion.voice.prosody import NeutralBaseline, VoiceStats, auto_baseline

log = logging.getLogger(__name__)


def current(store: Store, user_id: int, config: Config) -> tuple[str | NeutralBaseline, Baseline | None]:
    """The baseline the user's next diary uploaded without ``gender`` is measured against, with its stored row
    (None: the config's default, a name ``fusion.voice.prosody.resolve_baseline`` knows)."""
    for kind in (PERSONAL, PERSONAL_AUTO):
        if (row := store.latest_baseline(user_id, kind)) is not None:
            return NeutralBaseline.from_json(row.baseline_json), row
    return config.audio.baseline, None


class Builds:
    """Hand-made baselines being built in this process (``POST /v1/baseline`` decodes its recordings in the
    request): at most ``size`` at once (more: 503, try again later), and one per user (429)."""

    def __init__(self, size: int):
        self._free = threading.BoundedSemaphore(size)
        self._users: set[int] = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, user_id: int) -> Iterator[None]:
        with self._lock:
            if user_id in self._users:
                raise HTTPException(429, "a baseline of yours is being built already; send this one when it is done")
            if not self._free.acquire(blocking=False):
                raise HTTPException(503, "the service is building other baselines; try again in a minute",
                                    headers={"Retry-After": "60"})
            self._users.add(user_id)
        try:
            yield
        finally:
            with self._lock:
                self._users.discard(user_id)
                self._free.release()


def refresh_auto(store: Store, user_id: int, config: Config, within: Session | None = None) -> Baseline | None:
    """The user's latest ``personal-auto`` baseline, first stored anew when the diaries it should rest on changed;
    None while fewer than ``[history] min_diaries`` diaries hold voice stats.

    One transaction (``within``'s, or its own) under the user's lock, taken before the diaries are read: two jobs of
    one user finishing at once refresh one after the other, the second reading the first one's diary."""
    with store.transaction(within) as s:
        store.lock_user(user_id, s)
        rows = config.history.auto_diaries(store.stats_of_recent(user_id, config.history.max_diaries, s))
        if rows is None:
            return None
        sources = json.dumps(sorted(row.id for row in rows))
        latest = store.latest_baseline(user_id, PERSONAL_AUTO, s)
        if latest is not None and latest.sources == sources:
            return latest
        since = rows[0].when
        stats = [VoiceStats.from_dict(json.loads(row.voice_stats)) for row in rows]
        baseline = auto_baseline(stats, config, PERSONAL_AUTO, since=since.isoformat())
        row = store.add_baseline(user_id, PERSONAL_AUTO, len(rows), baseline.to_json(), since=since, sources=sources,
                                 within=s)
    log.info("user %d: personal-auto baseline version %d from %d diaries", user_id, row.version, len(rows))
    return row


def refresh_within(s: Session, store: Store, user_id: int, config: Config) -> None:
    """``refresh_auto`` inside the caller's transaction ``s``; a refresh that fails is logged and undone alone (what
    the transaction did before stays: the next diary tries again)."""
    try:
        with s.begin_nested():
            refresh_auto(store, user_id, config, within=s)
    except Exception:
        log.exception("user %d: the personal-auto baseline could not be refreshed", user_id)


def forget_diary(s: Session, store: Store, user_id: int, analysis_id: str, config: Config) -> None:
    """A diary being deleted in the transaction ``s``: the automatic baseline versions built from it go with it,
    and the remaining diaries (when enough) make a new one."""
    built = [b.id for b in store.baselines(user_id, PERSONAL_AUTO, within=s)
             if analysis_id in json.loads(b.sources or "[]")]
    if built:
        store.remove_baselines(user_id, ids=built, within=s)
    refresh_within(s, store, user_id, config)


def describe(spec: str | NeutralBaseline, row: Baseline | None, config: Config) -> BaselineInfo:
    """``spec`` (and the row it was stored as) in the shape ``/v1/baseline`` answers with."""
    if row is None:
        named = config.audio.baselines.get(spec) if isinstance(spec, str) else None
        return BaselineInfo(kind="reference", name=spec if isinstance(spec, str) else spec.name, version=None,
                            diaries=None, clips=None, since=None, created=None,
                            pitch_hz=named.pitch_hz if named else None, energy_db=named.energy_db if named else None)
    auto = row.kind == PERSONAL_AUTO
    return BaselineInfo(
        kind=row.kind, name=spec.name, version=row.version,
        diaries=row.recordings if auto else None, clips=None if auto else row.recordings,
        since=None if row.since is None else row.since.replace(tzinfo=timezone.utc),
        created=row.created.replace(tzinfo=timezone.utc),
        pitch_hz=_rounded(spec.pitch_hz), energy_db=_rounded(spec.energy_db),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 3)
