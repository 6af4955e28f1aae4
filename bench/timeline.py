"""What a timeline request costs as a person's diaries pile up: ``GET /v1/timeline`` and ``/v1/timeline.html``.

    python bench/timeline.py [--sizes 30 365 1095] [--rounds 3]

One real report (the bundled sample with its words, through the real pipeline) is stored again for every day of
one, two or three years of daily diaries (voice valence, pitch and energy varied per day), each user in one
service; then, in one run, each user's timeline is fetched ``--rounds`` times in turn, users alternating so a
change of machine load falls on all alike. It prints the median milliseconds per request and per diary: a flat
per-diary figure means the cost grows in proportion to the diaries, a rising one faster. The last line is the
figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient

from fusion.config import default_config
from fusion.pipeline import analyze
from fusion.report import DiaryReport, Prosody, ValenceArousal
from fusion.service.app import create_app
from fusion.service.store import Store, entry_json

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "diary_ko.flac"
WORDS = "오늘은 정말 행복한 하루였다. 친구들과 맛있는 저녁을 먹었다."


def _day(template: DiaryReport, when: datetime, i: int) -> DiaryReport:
    """The template as recorded on ``when``, its voice moved a little (a weekly rhythm)."""
    wave = math.sin(i * 2 * math.pi / 7)
    prosody = template.voice.prosody or Prosody(pitch_hz=200.0, energy_db=-20.0, speaking_rate=3.0)
    voice = template.voice.model_copy(update={"prosody": prosody.model_copy(update={
        "pitch_hz": round(200.0 * 2 ** (wave / 12), 2), "energy_db": round(-20.0 + wave, 2)})})
    return template.model_copy(update={"recorded_at": when, "voice": voice,
                                       "voice_va": ValenceArousal(valence=round(0.2 * wave, 3), arousal=0.0)})


def store_days(store: Store, user_id: int, template: DiaryReport, start: datetime, n: int,
               voice_stats: str | None = None) -> None:
    """``n`` done diaries for one user, one a day from ``start`` (with their compact rows, as jobs leave them)."""
    for i in range(n):
        when = start + timedelta(days=i)
        row = store.create(user_id, f"day{i}.flac", None, None, WORDS, when)
        report = _day(template, when, i)
        store.finish(row.id, store.claim(row.id), report_json=report.to_json(None), voice_stats=voice_stats,
                     entry_json=entry_json(row.id, report, when))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 365, 1095])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    template = analyze(SAMPLE, transcript=WORDS)
    with tempfile.TemporaryDirectory() as tmp:
        config = default_config().with_updates(server={"storage_dir": tmp})
        app = create_app(config)
        store = app.state.store
        start = datetime(2024, 1, 1, 21, tzinfo=timezone.utc)
        users = {}
        for n in args.sizes:
            token = store.add_user(f"user{n}")
            user_id = store.user_for_token(token).id
            store_days(store, user_id, template, start, n)
            users[n] = {"Authorization": f"Bearer {token}"}
        times: dict[str, dict[int, list[float]]] = {"timeline": {n: [] for n in users},
                                                   "timeline.html": {n: [] for n in users}}
        with TestClient(app) as client:
            for _ in range(args.rounds):
                for n, auth in users.items():
                    for what in times:
                        t0 = time.perf_counter()
                        response = client.get(f"/v1/{what}", headers=auth)
                        times[what][n].append(time.perf_counter() - t0)
                        assert response.status_code == 200, response.text
    figures = {}
    for what, by_size in times.items():
        for n, seconds in by_size.items():
            ms = 1000 * statistics.median(seconds)
            figures[f"{what} {n}"] = {"ms": round(ms, 1), "ms_per_diary": round(ms / n, 3)}
            print(f"GET /v1/{what:<14} {n:>5} diaries  {ms:8.1f} ms  {ms / n:6.3f} ms a diary")
    smallest, largest = min(users), max(users)
    growth = figures[f"timeline {largest}"]["ms_per_diary"] / figures[f"timeline {smallest}"]["ms_per_diary"]
    print(f"per-diary cost, {largest} against {smallest} diaries: x{growth:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
