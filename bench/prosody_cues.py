"""Do pitch range, pause structure and speaking rate tell a sad voice from an angry or calm one, on DEV speakers?

    python bench/prosody_cues.py [--data ../shared/data] [--conditions clean,pink15,near,opus16]

The low-mood markers the literature supports (flatter pitch and energy, longer pauses, slower rate), each
measured per clip from ``fusion.voice.prosody``'s frames (yin F0, RMS, voicing by energy and zero crossings)
on the train and dev speakers' lexically balanced clips (the clips ``fusion train alerts`` scores), as
recorded and under each condition (``fusion.degrade``, seed 0 and the clip's path):

- pitch range: 90th minus 10th percentile of the voiced frames' F0, semitones;
- energy range: 90th minus 10th percentile of the active frames' level, dB;
- pause share: the frames between the first and last active frame that are not active;
- rate: voiced segments per second (``Prosody.rate_per_s``).

Prints, per dataset and condition, the AUC with which each cue (oriented so that a sad voice scores
higher: a narrower range, more pause, a slower rate) tells sad clips from angry ones and from calm
(neutral and calm) ones. Nothing on test, and nothing shipped changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fusion.config import default_config
from fusion.degrade import parse_conditions
from fusion.eval.conditions import babble_for
from fusion.eval.metrics import roc_auc
from fusion.progress import track
from fusion.train.voice import clip_audio, read_rows
from fusion.voice.prosody import ACTIVE_DB, ACTIVE_FLOOR_DB, FMAX, FMIN, VOICED_ZCR, prosody, prosody_frames

CUES = ("pitch range", "energy range", "pause share", "rate")
SIGN = {"pitch range": -1.0, "energy range": -1.0, "pause share": 1.0, "rate": -1.0}  # sad scores higher
LABELS = ("sad", "angry", "neutral", "calm")


def cues(samples: np.ndarray) -> dict[str, float]:
    """The four cues of one clip (NaN where nothing was voiced)."""
    f0, rms, zcr = prosody_frames(np.asarray(samples, np.float32), 16000)
    db = 20.0 * np.log10(rms + 1e-10)
    active = db > max(np.percentile(db, 99) - ACTIVE_DB, ACTIVE_FLOOR_DB) if len(db) else db > 0
    voiced = active & (zcr < VOICED_ZCR) & (f0 > FMIN * 1.05) & (f0 < FMAX * 0.95)
    if voiced.sum() < 3:
        return dict.fromkeys(CUES, np.nan)
    semitones = 12.0 * np.log2(f0[voiced])
    idx = np.flatnonzero(active)
    return {"pitch range": float(np.subtract(*np.percentile(semitones, [90, 10]))),
            "energy range": float(np.subtract(*np.percentile(db[active], [90, 10]))),
            "pause share": float(1.0 - active[idx[0]:idx[-1] + 1].mean()),
            "rate": prosody(samples).rate_per_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("..") / "shared" / "data")
    parser.add_argument("--conditions", default="clean,pink15,near,opus16")
    args = parser.parse_args()
    conditions = parse_conditions(args.conditions)
    rows = [r for r in read_rows(args.data / "speech") if r["split"] in ("train", "dev") and r["label"] in LABELS]
    babble = babble_for(conditions, default_config())
    print("AUC of each cue, sad against angry | sad against neutral+calm (sad oriented higher)")
    for condition in conditions:
        measured = [cues(clip_audio(r["path"], condition, babble).samples)
                    for r in track(rows, f"cues ({condition})", True)]
        for dataset in sorted({r["dataset"] for r in rows}):
            parts = []
            for cue in CUES:
                aucs = []
                for others in (("angry",), ("neutral", "calm")):
                    keep = [i for i, r in enumerate(rows) if r["dataset"] == dataset
                            and r["label"] in ("sad", *others) and np.isfinite(measured[i][cue])]
                    auc = roc_auc([rows[i]["label"] == "sad" for i in keep],
                                  [SIGN[cue] * measured[i][cue] for i in keep])
                    aucs.append("  -  " if auc is None else f"{auc:.3f}")
                parts.append(f"{cue} {aucs[0]} | {aucs[1]}")
            print(f"{condition:8s} {dataset:13s} " + "   ".join(parts))


if __name__ == "__main__":
    main()
