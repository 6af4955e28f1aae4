"""Write ko_transcribed's labels with a speaker-disjoint ``split`` column, for choosing STT settings on dev.

    python bench/stt_split.py OUT.csv [--data ../shared/data/speech/ko_transcribed]
    fusion eval stt OUT.csv --split dev [--set beam_size=1 ...]   # choose here
    fusion eval stt OUT.csv --split test                          # report here, once

The folder has no split of its own; one speaker (pma, male, 31 clips, 114 s) is dev and the
other two (pfa, female 20-40s; pfl, female 50+; 62 clips, 348 s) are test, so the reported
figure comes from voices the settings were never chosen on. Paths are written absolute.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech" / "ko_transcribed"
DEV_SPEAKERS = {"pma"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    with (args.data / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["path"] = str((args.data / row["path"]).resolve())
        row["split"] = "dev" if row["speaker"] in DEV_SPEAKERS else "test"
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts = {s: sum(r["split"] == s for r in rows) for s in ("dev", "test")}
    print(f"{args.out}: dev {counts['dev']} clips, test {counts['test']} clips")


if __name__ == "__main__":
    main()
