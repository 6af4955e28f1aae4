"""What a service job costs beyond the pipeline as a person's diaries pile up (beside ``bench/timeline.py``).

    python bench/job_history.py [--sizes 0 30 1000] [--rounds 15]

One real report (the bundled sample with its words, through the real pipeline) stands for the analysis, so the
job's own work is what is timed: decoding the upload, its voice statistics, the drift alert over the user's
history, storing the result and refreshing the automatic baseline. Each user has ``n`` earlier done diaries
(one a day, with compact rows and voice statistics, as jobs leave them); then, in one run, each user's job runs
``--rounds`` times in turn, users alternating so a change of machine load falls on all alike. It prints the median
milliseconds per job and each size's difference from the smallest (from 30 diaries on a job also refreshes the
automatic baseline, a fixed cost). The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from timeline import SAMPLE, WORDS, store_days

from fusion.audio import load_audio
from fusion.config import default_config
from fusion.pipeline import analyze
from fusion.service.jobs import Workers
from fusion.service.store import Store
from fusion.voice.prosody import voice_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 30, 1000])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    template = analyze(SAMPLE, transcript=WORDS)
    stats = json.dumps(voice_stats(load_audio(SAMPLE).samples, default_config().audio).to_dict())
    start = datetime(2024, 1, 1, 21, tzinfo=timezone.utc)
    times: dict[int, list[float]] = {n: [] for n in args.sizes}
    with tempfile.TemporaryDirectory() as tmp:
        config = default_config().with_updates(server={"storage_dir": tmp, "keep_recordings_days": 1})
        root = Path(tmp)
        (root / "uploads").mkdir()
        (root / "workers").mkdir()
        store = Store(config.server.database())
        workers = Workers(store, config, root, lambda *a, **k: template)
        users = {}
        for n in args.sizes:
            user_id = store.user_for_token(store.add_user(f"user{n}")).id
            store_days(store, user_id, template, start, n, voice_stats=stats)
            users[n] = user_id
        for r in range(args.rounds + 1):  # the first round warms up
            for n, user_id in users.items():
                row = store.create(user_id, "today.flac", None, None, WORDS, start + timedelta(days=n + r))
                shutil.copy(SAMPLE, root / "uploads" / row.id)
                t0 = time.perf_counter()
                workers._run(row.id)
                if r:
                    times[n].append(time.perf_counter() - t0)
                assert store.get(row.id).status == "done", store.get(row.id).error
        workers.close()
        store.close()
    ms = {n: 1000 * statistics.median(t) for n, t in times.items()}
    smallest = min(ms)
    for n, value in ms.items():
        print(f"a job with {n:>5} earlier diaries: {value:8.1f} ms  "
              f"({value - ms[smallest]:+.1f} ms against {smallest})")
    print(json.dumps({"bench": "job_history", "rounds": args.rounds,
                      "ms": {str(n): round(v, 2) for n, v in ms.items()}}))


if __name__ == "__main__":
    main()
