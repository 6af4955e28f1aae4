"""Build the ``fusion eval alerts`` set: clearly happy words over sad and not-sad voices.

Only test-split, lexically balanced audio (the same sentences in every emotion), so the
voice alone says whether it is sad:

- ``ko_clip``: each clip of ko_emotional's plain-to-emotional test speaker ``emg``;
- ``ko_joined``: ~40 s recordings of five ``emg`` clips of one emotion joined by 1 s pauses,
  in a few seeded orderings;
- ``ravdess``: RAVDESS test actors 01-04, sad against happy, neutral and calm.

Every row gets a happy Korean diary transcript; sad-voiced rows expect
``positive_words_depressed_tone``, the others no alert. Writes the recordings under
``audio/`` and ``alerts.csv`` beside this script; ``--personal`` also writes
``alerts_personal.csv``, whose rows use a personal baseline per speaker built from that
speaker's neutral (RAVDESS: neutral and calm) clips, which it then does not score.
``calm.csv`` lists every ``ko_transcribed`` clip (calm read speech of plain sentences) under
its own transcript: no alert is due on any of them. ``voices.csv`` lays the staged happy sentences
over every ``ko_emotional`` dev and test clip (split column kept), the set ``--degrade`` measures.
``diaries.csv`` lays everyday diaries (the written test diaries of ``evalsets/diaries/test.jsonl``)
over the ``ko_joined`` recordings: every positive diary over every joined recording (sad voices
expect the alert, the others none), and every negative and mixed diary over the sad ones (no alert
expected: the words are not positive). ``diaries_dev.csv`` is the same over the dev split: the written dev diaries
over joined recordings of ko_emotional's dev speaker ``nem``, the set rules are checked on before the test sets
(``nem`` reads emotion-congruent scripts: no plain-to-emotional speaker is in dev).

    python evalsets/alerts/make_set.py [--data ../shared/data] [--personal]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from fusion.alerts import FLAGSHIP
from fusion.audio import SAMPLE_RATE

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"
SEED = 0
PAUSE_S = 1.0
CLIPS_PER_JOIN = 5
JOINS_PER_EMOTION = 3
SPEAKER = "emg"
DEV_SPEAKER = "nem"
RAVDESS_LABELS = ("sad", "happy", "neutral", "calm")
FIELDS = ["path", "transcript", "expected", "baseline", "group", "speaker", "sources"]
TRANSCRIPTS = [
    "오늘 정말 행복했어. 친구들이랑 맛있는 저녁을 먹고 많이 웃었어.",
    "드디어 시험에 합격했어! 너무 기뻐서 하루 종일 웃음이 났어.",
    "오랜만에 가족들이랑 여행을 갔는데 정말 즐거웠어. 날씨도 너무 좋았어.",
    "회사에서 칭찬을 받았어. 내가 한 일이 인정받아서 정말 뿌듯하고 신나.",
    "오늘 산책하다가 예쁜 꽃을 봤어. 기분이 너무 좋고 마음이 행복해.",
    "생일이라 친구들이 깜짝 파티를 해줬어. 정말 감동이고 최고의 하루였어.",
]


def read_labels(folder: Path, split: str = "test") -> list[dict[str, str]]:
    """A speech folder's ``labels.csv`` rows of one split."""
    with (folder / "labels.csv").open(encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def read_clip(path: Path) -> np.ndarray:
    """A 16 kHz mono clip as float32 (the shared data is stored so; anything else is an error)."""
    samples, sr = sf.read(path, dtype="float32")
    if sr != SAMPLE_RATE or samples.ndim != 1:
        raise ValueError(f"{path}: expected 16 kHz mono, got {sr} Hz, shape {samples.shape}")
    return samples


def copy_clip(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def join_clips(paths: list[Path], dest: Path) -> Path:
    """The clips one after another with ``PAUSE_S`` of silence between, as 16-bit FLAC."""
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)
    parts = [x for p in paths for x in (read_clip(p), pause)][:-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dest, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return dest


def row(path: Path, voice: str, part: str, speaker: str, extra: dict | None = None) -> dict:
    """One scored recording; ``clips`` (its source clips) go to the CSV as ``sources`` (``;``-separated), so
    ``fusion eval alerts --baseline-mode auto`` can leave a recording's own clips out of its baseline."""
    extra = extra or {}
    return {"path": path.relative_to(HERE).as_posix(), "expected": FLAGSHIP if voice == "sad" else "",
            "baseline": "auto", "group": f"{part} {voice}", "voice": voice, "speaker": speaker,
            "sources": ";".join(extra.get("clips", [])), **extra}


def ko_rows(data: Path, out: Path, rng: np.random.Generator) -> list[dict]:
    """Each plain-to-emotional clip of the test speaker, then its joined recordings per emotion."""
    folder = data / "speech" / "ko_emotional"
    clips = sorted((r for r in read_labels(folder) if r["speaker"] == SPEAKER and r["subset"] == "plain-to-emotional"),
                   key=lambda r: r["path"])
    if not clips:
        raise SystemExit(f"{folder / 'labels.csv'}: no plain-to-emotional test clips of speaker {SPEAKER!r}")
    rows = [row(copy_clip(folder / c["path"], out / "ko_clip" / Path(c["path"]).name), c["label"], "ko_clip",
                SPEAKER, {"clips": [c["path"]]}) for c in clips]
    return rows + joined_rows(folder, clips, SPEAKER, out, rng)


def joined_rows(folder: Path, clips: list[dict], speaker: str, out: Path, rng: np.random.Generator) -> list[dict]:
    """``JOINS_PER_EMOTION`` recordings per emotion, each of ``CLIPS_PER_JOIN`` of the speaker's clips in a seeded
    order."""
    rows = []
    for label in sorted({c["label"] for c in clips}):
        paths = [c["path"] for c in clips if c["label"] == label]
        for k in range(JOINS_PER_EMOTION):
            chosen = [paths[i] for i in rng.permutation(len(paths))[:CLIPS_PER_JOIN]]
            dest = join_clips([folder / p for p in chosen], out / "ko_joined" / f"{speaker}_{label}_{k}.flac")
            rows.append(row(dest, label, "ko_joined", speaker, {"clips": chosen}))
    return rows


def dev_joined_rows(data: Path, out: Path) -> list[dict]:
    """The joined recordings of the dev speaker, for ``diaries_dev.csv``."""
    folder = data / "speech" / "ko_emotional"
    clips = sorted((r for r in read_labels(folder, "dev") if r["speaker"] == DEV_SPEAKER), key=lambda r: r["path"])
    if not clips:
        raise SystemExit(f"{folder / 'labels.csv'}: no dev clips of speaker {DEV_SPEAKER!r}")
    return joined_rows(folder, clips, DEV_SPEAKER, out, np.random.default_rng(SEED))


def ravdess_rows(data: Path, out: Path) -> list[dict]:
    """Every sad, happy, neutral and calm clip of the RAVDESS test actors."""
    folder = data / "speech" / "ravdess"
    clips = sorted((r for r in read_labels(folder) if r["label"] in RAVDESS_LABELS), key=lambda r: r["path"])
    return [row(copy_clip(folder / c["path"], out / "ravdess" / c["path"]), c["label"], "ravdess",
                f"ravdess_actor{c['speaker']}", {"clips": [c["path"]], "repetition": c["repetition"]}) for c in clips]


def personal_rows(rows: list[dict], data: Path, out: Path) -> list[dict]:
    """The rows under a personal baseline per speaker; the clips that built a baseline are not scored.

    emg's baseline is its neutral clips (so neutral ko_clip and ko_joined rows drop out);
    a RAVDESS actor's is its neutral and calm clips of repetition 1 (repetition 2 stays scored).
    """
    from fusion.audio import load_audio
    from fusion.voice.prosody import build_baseline

    def is_baseline(r: dict) -> bool:
        if r["group"].startswith("ravdess"):
            return r["voice"] in ("neutral", "calm") and r["repetition"] == "1"
        return r["voice"] == "neutral"

    sources = {"ko": data / "speech" / "ko_emotional", "ravdess": data / "speech" / "ravdess"}
    json_of = {}
    for speaker in sorted({r["speaker"] for r in rows}):
        used = [r for r in rows if r["speaker"] == speaker and is_baseline(r) and len(r["clips"]) == 1]
        source = sources["ravdess" if speaker.startswith("ravdess") else "ko"]
        clips = [load_audio(source / r["clips"][0]).samples for r in used]
        dest = out / "baselines" / f"{speaker}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        build_baseline(clips, name=f"personal:{speaker}").save_json(dest)
        json_of[speaker] = dest.relative_to(HERE).as_posix()
    return [{**r, "baseline": json_of[r["speaker"]]} for r in rows if not is_baseline(r)]


def calm_rows(data: Path) -> list[dict]:
    """Every ``ko_transcribed`` clip under its own transcript: calm read speech of plain sentences, no alert due.

    The paths point into ``data`` (relative to this folder when it lies beside the checkout): nothing is copied.
    """
    folder = data / "speech" / "ko_transcribed"
    with (folder / "labels.csv").open(encoding="utf-8", newline="") as fh:
        clips = list(csv.DictReader(fh))
    return [{"path": os.path.relpath(folder / c["path"], HERE), "transcript": c["transcript"], "expected": "",
             "baseline": "auto", "group": f"calm {c['speaker']}", "speaker": c["speaker"], "sources": c["path"]}
            for c in clips]


def voice_rows(data: Path) -> list[dict]:
    """Every ``ko_emotional`` dev and test clip under a staged happy sentence (sad voices expect the flagship);
    the paths point into ``data`` as ``calm_rows``' do, and each row keeps its split."""
    folder = data / "speech" / "ko_emotional"
    with (folder / "labels.csv").open(encoding="utf-8", newline="") as fh:
        clips = [c for c in csv.DictReader(fh) if c["split"] in ("dev", "test")]
    return [{"path": os.path.relpath(folder / c["path"], HERE), "transcript": TRANSCRIPTS[i % len(TRANSCRIPTS)],
             "expected": FLAGSHIP if c["label"] == "sad" else "", "baseline": "auto",
             "group": f"ko_emotional {c['label']}", "speaker": c["speaker"], "sources": c["path"], "split": c["split"]}
            for i, c in enumerate(clips)]


def diary_rows(rows: list[dict], diaries: Path) -> list[dict]:
    """The written diaries of ``diaries`` over the joined recordings among ``rows`` (see the module doc)."""
    with diaries.open(encoding="utf-8") as fh:
        written = [d for d in map(json.loads, fh) if d["source"] == "written"]
    joined = [r for r in rows if r["group"].startswith("ko_joined")]
    out = []
    for d in written:
        voices = joined if d["polarity"] == "positive" else [r for r in joined if r["voice"] == "sad"] \
            if d["polarity"] in ("negative", "mixed") else []
        out += [{**r, "transcript": d["text"], "group": f"{d['polarity']} words, {r['voice']} voice",
                 "expected": r["expected"] if d["polarity"] == "positive" else ""} for r in voices]
    return out


def write_csv(path: Path, rows: list[dict], fields: list[str] = FIELDS) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{path}: {len(rows)} rows, {sum(bool(r['expected']) for r in rows)} expecting {FLAGSHIP}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: %(default)s)")
    parser.add_argument("--personal", action="store_true", help="also write alerts_personal.csv and its baselines")
    args = parser.parse_args()
    out = HERE / "audio"
    rows = ko_rows(args.data, out, np.random.default_rng(SEED)) + ravdess_rows(args.data, out)
    rows = [{**r, "transcript": TRANSCRIPTS[i % len(TRANSCRIPTS)]} for i, r in enumerate(rows)]
    write_csv(HERE / "alerts.csv", rows)
    if args.personal:
        write_csv(HERE / "alerts_personal.csv", personal_rows(rows, args.data, out))
    write_csv(HERE / "calm.csv", calm_rows(args.data))
    write_csv(HERE / "voices.csv", voice_rows(args.data), FIELDS + ["split"])
    write_csv(HERE / "diaries.csv", diary_rows(rows, HERE.parent / "diaries" / "test.jsonl"))
    dev = dev_joined_rows(args.data, out)
    write_csv(HERE / "diaries_dev.csv", diary_rows(dev, HERE.parent / "diaries" / "dev.jsonl"))


if __name__ == "__main__":
    main()
