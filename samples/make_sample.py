"""Rebuild samples/diary_ko.flac: five clips of one Korean speaker joined into a short diary.

    python samples/make_sample.py [--data ../shared/data/speech/ko_emotional]

The clips are speaker ``nea`` (female, train split) of emotiontts_open_db, as
normalised in shared/data (see samples/ATTRIBUTION.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

CLIPS = ["nea00102", "nea00104", "nea00105", "nea00203", "nea00201"]
GAP_S = 0.6
SAMPLE_RATE = 16000
OUT = Path(__file__).with_name("diary_ko.flac")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/speech/ko_emotional")
    args = parser.parse_args()
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    parts = []
    for clip in CLIPS:
        samples, rate = sf.read(args.data / "nea" / f"{clip}.flac", dtype="float32")
        assert rate == SAMPLE_RATE, f"{clip}: expected {SAMPLE_RATE} Hz, got {rate}"
        parts += [samples, gap]
    sf.write(OUT, np.concatenate(parts[:-1]), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    print(f"wrote {OUT} ({sum(len(p) for p in parts[:-1]) / SAMPLE_RATE:.1f} s)")


if __name__ == "__main__":
    main()
