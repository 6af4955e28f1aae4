"""Sound levels of a decoded recording: its loudness, the report's level warnings, and where it holds sound.

``voiced_spans`` is where the recording holds sound: the voice model hears those stretches, sentence times
are snapped to them, and speech to text cuts a long recording in their pauses (and its clips there too
under ``[stt] clips = "voiced"``).
"""

from __future__ import annotations

import numpy as np

from fusion.audio import Audio
from fusion.config import AudioInputConfig, default_config

# Samples read at a time where a whole-recording measure needs a temporary (a float64 or absolute copy: 30 minutes
# at once would add 115-230 MB); 65 s at 16 kHz.
LEVEL_BLOCK = 1 << 20


def audio_warnings(audio: Audio, cfg: AudioInputConfig | None = None) -> list[str]:
    """Plain-language warnings for a report: very short, silent or clipped input, repaired samples."""
    cfg = cfg or default_config().audio_input
    warnings = list(audio.warnings)
    if audio.duration < cfg.min_duration_s:
        warnings.append(f"very short recording: {audio.duration:.2f} s (less than {cfg.min_duration_s:g} s)")
    level = rms_dbfs(audio.samples)
    if level < cfg.silence_dbfs:
        warnings.append(f"silence: the recording is nearly silent ({level:.1f} dBFS RMS), no speech to analyse")
    clipped = sum(np.count_nonzero(np.abs(b) >= cfg.clip_level) for b in _blocks(audio.samples))
    clipped = clipped / audio.samples.size if audio.samples.size else 0.0
    if clipped > cfg.clip_fraction:
        warnings.append(f"clipped audio: {clipped:.2%} of samples at full scale; "
                        "emotion from the voice may be unreliable")
    return warnings


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level relative to full scale (1.0 = 0 dBFS); -inf-safe, floored at -200."""
    if samples.size == 0:
        return -200.0
    rms = float(np.sqrt(sum(np.square(b, dtype=np.float64).sum() for b in _blocks(samples)) / samples.size))
    return max(20.0 * np.log10(rms) if rms > 0 else -200.0, -200.0)


def voiced_spans(
    audio: Audio, cfg: AudioInputConfig | None = None, *, top_db: float | None = None, floor_dbfs: float | None = None
) -> list[tuple[float, float]]:
    """Intervals (seconds) that hold sound: within ``top_db`` of the loudest part and above ``floor_dbfs``.

    Pauses shorter than ``merge_gap_s`` (config) join their neighbours, so a span is an
    utterance rather than a syllable.

    ``librosa.effects.split`` alone is relative to the loudest frame, so pure
    silence or faint hiss would count as "voiced"; frames whose own level is
    below the absolute floor are dropped. Defaults come from ``cfg`` (``[audio_input]``).
    """
    cfg = cfg or default_config().audio_input
    top_db = cfg.top_db if top_db is None else top_db
    floor_dbfs = cfg.speech_floor_dbfs if floor_dbfs is None else floor_dbfs
    y = audio.samples
    if y.size == 0 or rms_dbfs(y) <= -200.0:
        return []
    frame, hop = 1024, 256
    rms = frame_rms(y, frame, hop)
    spans = _nonsilent(rms, top_db, hop, y.size)
    loud = 20.0 * np.log10(np.maximum(rms, 1e-10)) >= floor_dbfs
    out: list[tuple[float, float]] = []
    for start, end in spans:
        if not loud[start // hop : max(end // hop, start // hop + 1)].any():
            continue
        a, b = float(start / audio.sample_rate), float(end / audio.sample_rate)
        if out and a - out[-1][1] < cfg.merge_gap_s:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def frame_rms(y: np.ndarray, frame: int = 1024, hop: int = 256, block: int = 4096) -> np.ndarray:
    """``librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=True)[0]``, ``block`` frames at a time.

    librosa frames the whole signal at once (a ``frame``-fold copy: 0.5 GB for 30 minutes); this stays bounded,
    pads only the blocks at the ends, never a copy of the whole signal, and leaves librosa unloaded (numba's
    compiler: 130 MB) until the voice stage, so speech to text runs without it.
    """
    half = frame // 2
    n_frames = 1 + (y.size + 2 * half - frame) // hop
    out = []
    for f in range(0, n_frames, block):
        piece = _padded(y, f * hop - half, (min(f + block, n_frames) - 1) * hop + frame - half)
        out.append(np.sqrt(np.mean(np.square(np.lib.stride_tricks.sliding_window_view(piece, frame)[::hop]), axis=-1)))
    return np.concatenate(out)


def _padded(y: np.ndarray, a: int, b: int) -> np.ndarray:
    """``y[a:b]`` with zeros where ``a`` or ``b`` fall outside it."""
    inside = y[max(a, 0) : min(b, y.size)]
    if a >= 0 and b <= y.size:
        return inside
    return np.pad(inside, (max(-a, 0), max(b - y.size, 0)))


def _blocks(y: np.ndarray):
    """``y`` in views of ``LEVEL_BLOCK`` samples."""
    return (y[a : a + LEVEL_BLOCK] for a in range(0, y.size, LEVEL_BLOCK))


def _nonsilent(rms: np.ndarray, top_db: float, hop: int, n_samples: int) -> np.ndarray:
    """``librosa.effects.split`` from precomputed frame RMS: (start, end) sample intervals
    within ``top_db`` of the peak."""
    power = rms**2
    loud = 10.0 * np.log10(np.maximum(1e-10, power)) - 10.0 * np.log10(np.maximum(1e-10, np.max(power))) > -top_db
    edges = [np.flatnonzero(np.diff(loud.astype(int))) + 1]
    if loud[0]:
        edges.insert(0, np.array([0]))
    if loud[-1]:
        edges.append(np.array([len(loud)]))
    edges = np.minimum(np.concatenate(edges) * hop, n_samples)
    return edges.reshape((-1, 2))


__all__ = ["audio_warnings", "rms_dbfs", "voiced_spans", "frame_rms"]
