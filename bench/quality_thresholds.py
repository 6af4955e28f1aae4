"""What fusion.quality estimates under each recording condition, on the dev speaker's clips: where [quality] sits.

    python bench/quality_thresholds.py [--split dev] [--seed 0]

Every clip of ``ko_emotional``'s split, degraded by ``fusion.degrade`` with the seeds ``fusion eval --degrade``
uses, then assessed; prints per condition the least, median and greatest estimated SNR, reverberation time and
bandwidth, and how many clips the configured ``[quality]`` finds too poor to judge a voice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fusion.audio import load_audio
from fusion.config import default_config
from fusion.degrade import clip_seed, degrade
from fusion.eval.conditions import babble_clips
from fusion.eval.text import read_rows, resolve_path
from fusion.quality import assess

CONDITIONS = ("clean", "opus16", "aac32", "amr", "pink15", "pink5", "babble15", "babble5", "near", "far", "gain-25")
LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech" / "ko_emotional" / "labels.csv"


def spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "      n/a      "
    return f"{min(known):6.2f} {np.median(known):6.2f} {max(known):6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", type=Path, default=LABELS)
    args = parser.parse_args()
    cfg = default_config()
    rows = read_rows(args.labels, ("path",), args.split)
    clips = [load_audio(resolve_path(args.labels, r["path"])).samples for r in rows]
    babble = babble_clips(cfg)
    print(f"{len(clips)} clips of split {args.split}; [quality] {cfg.quality.model_dump()}")
    print(f"{'condition':10s} {'snr dB min/median/max':>22s} {'reverb s':>21s} {'bandwidth kHz':>21s}  too poor")
    for condition in CONDITIONS:
        found = [assess(degrade(y, condition, clip_seed(args.seed, r["path"].strip()), babble), cfg.quality)
                 for r, y in zip(rows, clips)]
        print(f"{condition:10s} {spread([q.snr_db for q in found])} {spread([q.decay_s for q in found])} "
              f"{spread([q.bandwidth_hz / 1000 for q in found])}  {sum(bool(q.problems) for q in found)}/{len(found)}")


if __name__ == "__main__":
    main()
