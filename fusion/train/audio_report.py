"""What the CNN-BiLSTM hears in Korean voices: P(SAD) and prosody per clip against gender and personal baselines.

``fusion train audio --eval-only --speaker-report FILE`` prints and saves it with the SAD-vs-rest
ROC-AUC of each low-mood cue; ``--prosody-reference`` derives the ``[audio]`` prosody reference.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from fusion.audio import load_audio
from fusion.config import Config
from fusion.eval.metrics import roc_auc
from fusion.levels import voiced_spans
from fusion.train.audio_clips import read_rows
from fusion.voice.cnn import CnnVoice
from fusion.voice.mfcc import mfcc
from fusion.voice.prosody import NeutralBaseline, build_baseline, prosody


def prosody_reference(data: Path) -> dict:
    """Per gender: median over ko_emotional TRAIN speakers of each one's median neutral-clip prosody."""
    per_speaker = defaultdict(list)
    for r in read_rows(data, "ko_emotional"):
        if r["split"] == "train" and r["label"] == "neutral":
            p = prosody(load_audio(r["path"]).samples)
            per_speaker[(r["gender"], r["speaker"])].append((p.pitch_hz, p.energy_db, p.rate_per_s))
    ref = {}
    for g in ("male", "female"):
        med = np.median([np.nanmedian(v, axis=0) for (gg, _), v in per_speaker.items() if gg == g], axis=0)
        ref[g] = dict(zip(("pitch_hz", "energy_db", "rate_per_s"), np.round(med, 2).tolist()))
    return ref


def speaker_report(model: CnnVoice, data: Path, cfg: Config, speakers=("emg", "ned")) -> list[dict]:
    """Per clip of the Korean test speakers: P(SAD) and prosody relative to gender and personal baselines.

    The personal baseline is built from all of the speaker's neutral clips, so its neutral rows are in-sample.
    """
    rows = [r for r in read_rows(data, "ko_emotional") if r["speaker"].split(":")[1] in speakers]
    out = []
    for spk in speakers:
        mine = [r for r in rows if r["speaker"].endswith(":" + spk)]
        audio = [load_audio(r["path"]) for r in mine]
        bases = {"gender": NeutralBaseline.from_config(mine[0]["gender"], cfg.audio),
                 "personal": build_baseline([a.samples for a, r in zip(audio, mine) if r["label"] == "neutral"], spk,
                                            cfg.audio)}
        labels = cfg.labels.en
        sad = labels.index("SAD")
        for r, decoded in zip(mine, audio):
            y = decoded.samples
            p = prosody(y)
            row = {"speaker": spk, "speaker_gender": r["gender"], "file": Path(r["path"]).name, "label": r["label"],
                   "pitch_hz": p.pitch_hz, "energy_db": p.energy_db, "rate_per_s": p.rate_per_s}
            for kind, b in bases.items():
                probs = model.diary_probs(mfcc(y), voiced_spans(decoded), b)
                rel = p.relative_to(b)
                row[kind] = {"p_sad": float(probs[sad]), "top": labels[int(probs.argmax())],
                             "semitones": rel["pitch_semitones"], "energy_db": rel["energy_delta_db"],
                             "rate_ratio": rel["rate_ratio"]}
            out.append(row)
    return out


def print_speaker_report(rows: list[dict]) -> None:
    print(f"{'clip':14s} {'label':8s} | gender: P(SAD) top      st    dB  rate "
          "| personal: P(SAD) top      st    dB  rate")
    for r in rows:
        cells = [f"{r[k]['p_sad']:.2f} {r[k]['top']:8s} {r[k]['semitones']:+5.1f} {r[k]['energy_db']:+5.1f} "
                 f"{r[k]['rate_ratio']:.2f}" for k in ("gender", "personal")]
        print(f"{r['file']:14s} {r['label']:8s} |         {cells[0]} |           {cells[1]}")


def _drop(value: float) -> float:
    """A drop below the baseline as a positive number (no measurement: no drop)."""
    return 0.0 if value is None or np.isnan(value) else -value


def cue_aucs(rows: list[dict], pitch_weight: float) -> dict[str, dict[str, float]]:
    """SAD-vs-rest ROC-AUC of each low-mood cue over the report's clips (neutral included), per baseline kind.

    Cues point the way low mood is expected to go: P(SAD), pitch drop (semitones), energy drop (dB), slowing
    (rate ratio below 1), and the product's depressed-voice score P(SAD) + ``pitch_weight`` · max(pitch drop, 0).
    """
    cues = {"P(SAD)": lambda c: c["p_sad"], "pitch drop": lambda c: _drop(c["semitones"]),
            "energy drop": lambda c: _drop(c["energy_db"]), "slowing": lambda c: _drop(c["rate_ratio"] - 1),
            f"P(SAD) + {pitch_weight:g} x pitch drop":
                lambda c: c["p_sad"] + pitch_weight * max(_drop(c["semitones"]), 0)}
    is_sad = [r["label"] == "sad" for r in rows]
    return {name: {kind: roc_auc(is_sad, [cue(r[kind]) for r in rows]) for kind in ("gender", "personal")}
            for name, cue in cues.items()}

