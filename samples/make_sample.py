"""Rebuild the bundled samples from shared/data: short recordings of real clips joined with pauses.

    python samples/make_sample.py [--data ../shared/data/speech/ko_emotional]

- ``diary_ko.flac``: five clips of speaker ``nea`` (female, train split): three happy
  sentences read happily, two sad ones read sadly — words and voice agree.
- ``sad_voice_ko.flac``: three plain sentences read in a sad voice by speaker ``emg``
  (male, test split: no model here was trained on him); analysed with the everyday diary of
  ``everyday_ko.txt`` it shows the flagship alert, "positive words, depressed tone".

The clips are from emotiontts_open_db, as normalised in shared/data (see samples/ATTRIBUTION.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLES = {
    "diary_ko.flac": ("nea", ["nea00102", "nea00104", "nea00105", "nea00203", "nea00201"]),
    "sad_voice_ko.flac": ("emg", ["emg00203", "emg00204", "emg00205"]),
}
GAP_S = 0.6
SAMPLE_RATE = 16000
HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/data/speech/ko_emotional")
    args = parser.parse_args()
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    for name, (speaker, clips) in SAMPLES.items():
        parts = []
        for clip in clips:
            samples, rate = sf.read(args.data / speaker / f"{clip}.flac", dtype="float32")
            assert rate == SAMPLE_RATE, f"{clip}: expected {SAMPLE_RATE} Hz, got {rate}"
            parts += [samples, gap]
        sf.write(HERE / name, np.concatenate(parts[:-1]), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        print(f"wrote {HERE / name} ({sum(len(p) for p in parts[:-1]) / SAMPLE_RATE:.1f} s)")


if __name__ == "__main__":
    main()
