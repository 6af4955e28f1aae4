"""Which neutral baseline each evaluated clip is heard against: ``--baseline-mode`` of ``fusion eval``.

- ``reference``: the configured reference baselines (the row's ``gender`` if it names one, else the
  one nearest the clip's pitch): what a new user gets.
- ``personal``: a hand-made baseline per speaker from their calm clips (``fusion baseline``).
- ``auto``: the service's personal-auto baseline, built from the person's own diaries whatever their
  mood (``fusion.voice.prosody.auto_baseline``: median prosody, the MFCC reference nearest its pitch). Here
  each clip's baseline is built from the *other* clips of its speaker among the evaluated rows, whatever
  their label, leaving out the clip being scored (and any clip sharing a source recording with it), as the service would
  from a person's other diaries. Each clip's ``VoiceStats`` is computed once, so leaving one out
  costs only a median. The service's rule picks which of those it rests on
  (``[history]``, ``HistoryConfig.auto_diaries``: the last ``max_diaries`` in the CSV's order, once there
  are ``min_diaries``); a clip with fewer falls back to ``reference`` and is counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from fusion.config import Config
from fusion.progress import track

MODES = ("reference", "personal", "auto")
AUTO_NAME = "personal-auto"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"baseline mode {mode!r}: choose one of {', '.join(MODES)}")
    return mode


def clip_stats(paths: Sequence[Path], cfg: Config, progress: bool = True, what: str = "voice stats") -> list:
    """``VoiceStats`` (MFCC mean and prosody) of each clip, computed once."""
    from fusion.audio import load_audio
    from fusion.voice.prosody import voice_stats

    return [voice_stats(load_audio(p).samples, cfg.audio) for p in track(paths, what, progress)]


def leave_one_out(stats: Sequence, speakers: Sequence[str], cfg: Config,
                  sources: Sequence[frozenset[str]] | None = None, name: str = AUTO_NAME) -> list:
    """Per clip, the personal-auto baseline of its speaker's other clips, as many as ``[history]`` lets the service
    build one from (None where too few).

    A clip with no speaker (empty) gets None. ``sources`` (per clip, the recordings it is made of)
    also leaves out the clips that share a recording with the scored one, so a recording joined from
    clips is not measured against a baseline made of those very clips.
    """
    from fusion.voice.prosody import auto_baseline

    by_speaker = defaultdict(list)
    for i, speaker in enumerate(speakers):
        if speaker:
            by_speaker[speaker].append(i)
    out = []
    for i, speaker in enumerate(speakers):
        others = cfg.history.auto_diaries([j for j in by_speaker.get(speaker, []) if j != i
                                           and not (sources is not None and sources[i] & sources[j])])
        out.append(None if others is None else auto_baseline([stats[j] for j in others], cfg, f"{name}:{speaker}"))
    return out
