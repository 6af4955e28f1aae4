"""Prosody and neutral baselines: how a voice sits against that person's (or a reference) calm voice.

``prosody`` measures pitch, loudness and speaking rate of a recording or a span of it;
``NeutralBaseline`` holds a neutral reference (the seed's MFCC mean/std, plus a prosody
reference), built from calm clips (``build_baseline``), from a person's own diaries whatever
their mood (``auto_baseline`` over each diary's ``VoiceStats``: median prosody)
or taken from the config (male / female, or ``auto`` by the speaker's pitch: ``resolve_baseline``).
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np

from fusion.audio import SAMPLE_RATE
from fusion.config import AudioConfig, Config, default_config
from fusion.errors import ModelError
from fusion.files import atomic_write
from fusion.report import Prosody as ReportProsody
from fusion.voice.mfcc import clip_mean

Span = tuple[float, float]


class BaselineError(ModelError, ValueError):
    """A neutral baseline that cannot be built or read (too few clips, bad JSON)."""


@dataclass(frozen=True)
class Prosody:
    """Median F0 of voiced frames (Hz, NaN when none), RMS level of active frames (dBFS), voiced segments per second."""

    pitch_hz: float
    energy_db: float
    rate_per_s: float

    def relative_to(self, baseline: NeutralBaseline) -> dict[str, float]:
        """Pitch (ratio, semitones), energy delta (dB) and rate ratio against the baseline's prosody reference."""
        out = {"pitch_ratio": math.nan, "pitch_semitones": math.nan, "energy_delta_db": math.nan,
               "rate_ratio": math.nan}
        if baseline.pitch_hz and self.pitch_hz > 0:
            out["pitch_ratio"] = self.pitch_hz / baseline.pitch_hz
            out["pitch_semitones"] = 12.0 * math.log2(out["pitch_ratio"])
        if baseline.energy_db is not None:
            out["energy_delta_db"] = self.energy_db - baseline.energy_db
        if baseline.rate_per_s:
            out["rate_ratio"] = self.rate_per_s / baseline.rate_per_s
        return out

    def for_report(self, baseline: NeutralBaseline) -> ReportProsody:
        """These measurements and their offsets from the baseline, rounded, None where nothing was measured."""
        rel = self.relative_to(baseline)
        return ReportProsody(
            pitch_hz=_finite(self.pitch_hz), energy_db=_finite(self.energy_db),
            speaking_rate=_finite(self.rate_per_s), pitch_semitones=_finite(rel["pitch_semitones"]),
            energy_db_delta=_finite(rel["energy_delta_db"]), rate_ratio=_finite(rel["rate_ratio"]),
        )


def _finite(x: float | None, digits: int = 3) -> float | None:
    return round(float(x), digits) if x is not None and np.isfinite(x) else None


PROSODY_FRAME, PROSODY_HOP = 1024, 256
PROSODY_BLOCK = 20 * SAMPLE_RATE  # samples per analysis block: yin holds ~1.3 MB a second of it (60 s: 75 MB)
FMIN, FMAX = 60.0, 400.0
ACTIVE_DB = 30.0   # frames within this many dB of the loud (99th percentile) frames count as speech
ACTIVE_FLOOR_DB = -70.0  # ... and above this absolute level (dBFS)
VOICED_ZCR = 0.15  # zero-crossing rate above this is unvoiced (fricatives, noise)
MIN_VOICED_RUN = 3  # frames (48 ms) for a voiced run to count as a segment


def prosody_frames(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame F0 (yin), RMS and zero-crossing rate, block by block so long inputs stay bounded."""
    f0s, rmss, zcrs = [], [], []
    step = (PROSODY_BLOCK // PROSODY_HOP) * PROSODY_HOP
    for a in range(0, max(len(y) - PROSODY_FRAME, 0) + 1, step):
        seg = y[a:a + step + PROSODY_FRAME - PROSODY_HOP]
        if len(seg) < PROSODY_FRAME:
            break
        kw = dict(frame_length=PROSODY_FRAME, hop_length=PROSODY_HOP, center=False)
        f0s.append(librosa.yin(seg, fmin=FMIN, fmax=FMAX, sr=sr, **kw))
        rmss.append(librosa.feature.rms(y=seg, **kw)[0])
        zcrs.append(librosa.feature.zero_crossing_rate(seg, **kw)[0])
    if not f0s:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(f0s), np.concatenate(rmss), np.concatenate(zcrs)


def prosody(samples: np.ndarray, sr: int = SAMPLE_RATE, span: Span | None = None) -> Prosody:
    """Pitch, loudness and speaking rate of a recording or of one (start_s, end_s) span of it.

    Voicing is decided by energy (within ``ACTIVE_DB`` of the loudest frames) and a low
    zero-crossing rate, which keeps ``librosa.yin`` fast: ten minutes take a few seconds.
    The rate is voiced segments (syllable nuclei, roughly) per second between the first
    and last active frame, so long pauses lower it.
    """
    y = np.asarray(samples, dtype=np.float32)
    if span is not None:
        y = y[int(span[0] * sr):int(span[1] * sr)]
    return _measure(*prosody_frames(y, sr), sr)


@dataclass(frozen=True)
class ProsodyTrack:
    """A recording's per-frame F0, RMS and zero-crossing rate (frame i starts at sample i · ``PROSODY_HOP``),
    analysed once and measured for the whole recording and for any span of it.

    A span's measurement reads the frames that lie inside it: the frames ``prosody`` cuts from
    the span itself, up to a hop's shift of the frame grid."""

    f0: np.ndarray
    rms: np.ndarray
    zcr: np.ndarray
    sr: int

    def measure(self, span: Span | None = None) -> Prosody:
        """What ``prosody`` gives for the recording (``span`` None) or for the (start_s, end_s) span."""
        frames = slice(None)
        if span is not None:
            start, end = int(span[0] * self.sr), int(span[1] * self.sr)
            frames = slice(-(-start // PROSODY_HOP), max((end - PROSODY_FRAME) // PROSODY_HOP + 1, 0))
        return _measure(self.f0[frames], self.rms[frames], self.zcr[frames], self.sr)


def track(samples: np.ndarray, sr: int = SAMPLE_RATE) -> ProsodyTrack:
    """The prosody frames of a whole recording, to measure it and its spans from one analysis."""
    return ProsodyTrack(*prosody_frames(np.asarray(samples, dtype=np.float32), sr), sr)


def _measure(f0: np.ndarray, rms: np.ndarray, zcr: np.ndarray, sr: int) -> Prosody:
    """Median voiced pitch, active level and voiced segments per second of these frames."""
    db = 20.0 * np.log10(rms + 1e-10)
    active = db > max(np.percentile(db, 99) - ACTIVE_DB, ACTIVE_FLOOR_DB) if len(db) else db > 0
    if not active.any():  # silence, or nothing above the floor: no measurement, not an error
        return Prosody(math.nan, math.nan, 0.0)
    voiced = active & (zcr < VOICED_ZCR) & (f0 > FMIN * 1.05) & (f0 < FMAX * 0.95)
    pitch = float(np.median(f0[voiced])) if voiced.any() else math.nan
    energy = float(10.0 * np.log10(np.mean(rms[active] ** 2) + 1e-20))
    idx = np.flatnonzero(active)
    duration = (idx[-1] - idx[0] + 1) * PROSODY_HOP / sr
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return Prosody(pitch, energy, float(np.sum(runs >= MIN_VOICED_RUN) / duration))


@dataclass(frozen=True)
class NeutralBaseline:
    """Neutral voice reference: MFCC mean/std per coefficient, plus optional prosody reference."""

    mean: np.ndarray
    std: np.ndarray
    name: str = "custom"
    pitch_hz: float | None = None
    energy_db: float | None = None
    rate_per_s: float | None = None
    diaries: int | None = None         # personal-auto: how many diaries built it
    since: str | None = None           # personal-auto: ISO time of the earliest of them

    def __post_init__(self):
        for field in ("mean", "std"):
            value = np.asarray(getattr(self, field), dtype=np.float32)
            if value.ndim != 1:
                raise ValueError(f"baseline {field} must be one value per MFCC coefficient, got shape {value.shape}")
            object.__setattr__(self, field, value)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"baseline mean {self.mean.shape} and std {self.std.shape} differ in shape")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all() and (self.std >= 0).all()):
            raise ValueError("baseline mean and std must be finite numbers, std not negative")
        for field, low, high in (("pitch_hz", FMIN, FMAX), ("energy_db", -200.0, 60.0), ("rate_per_s", 0.0, 100.0)):
            value = getattr(self, field)
            if value is not None and not (isinstance(value, numbers.Real) and low <= value <= high):
                raise ValueError(f"baseline {field} must be a number from {low:g} to {high:g}, got {value!r}")

    def normalise(self, x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
        return (x - self.mean) / (self.std + eps)

    @classmethod
    def from_config(cls, name: str, audio: AudioConfig) -> NeutralBaseline:
        if name not in audio.baselines:
            raise ModelError(f"no baseline {name!r} in [audio.baselines]; have {sorted(audio.baselines)}")
        b = audio.baselines[name]
        return cls(np.array(b.mean), np.array(b.std), name, b.pitch_hz, b.energy_db, b.rate_per_s)

    def to_json(self) -> str:
        return json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in asdict(self).items()},
                          indent=2)

    @classmethod
    def from_json(cls, text: str, name: str | None = None) -> NeutralBaseline:
        """A baseline from ``to_json``'s text (``name`` is the default for a JSON without one)."""
        return cls(**{**({"name": name} if name else {}), **json.loads(text)})

    def save_json(self, path: str | Path) -> None:
        atomic_write(path, self.to_json())

    @classmethod
    def load_json(cls, path: str | Path) -> NeutralBaseline:
        try:
            return cls.from_json(Path(path).read_text(), name=Path(path).stem)
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            raise BaselineError(f"{path}: not a readable baseline JSON ({exc})") from exc


@dataclass(frozen=True)
class VoiceStats:
    """What a baseline needs of one recording: its MFCC mean (the CNN's feature centre) and its prosody.

    A diary's stats hold no MFCC mean (None): ``auto_baseline`` takes the reference's, so only calm recordings
    given for a baseline (``voice_stats``) need one, and a diary's prosody is the pipeline's, not measured again.
    """

    mfcc_mean: np.ndarray | None
    prosody: Prosody

    def to_dict(self) -> dict:
        mfcc = None if self.mfcc_mean is None else [round(float(x), 5) for x in self.mfcc_mean]
        return {"mfcc_mean": mfcc,
                **{k: (None if not math.isfinite(v) else round(v, 4)) for k, v in asdict(self.prosody).items()}}

    @classmethod
    def from_dict(cls, data: dict) -> VoiceStats:
        mfcc = data.get("mfcc_mean")
        return cls(None if mfcc is None else np.asarray(mfcc, dtype=np.float32),
                   Prosody(*(math.nan if data[k] is None else float(data[k]) for k in ("pitch_hz", "energy_db",
                                                                                         "rate_per_s"))))


def voice_stats(samples: np.ndarray, cfg: AudioConfig, sr: int = SAMPLE_RATE) -> VoiceStats:
    """``VoiceStats`` of a recording given for a baseline: its MFCC mean and prosody."""
    return VoiceStats(clip_mean(samples, cfg.n_mfcc, cfg.frames), prosody(samples, sr))


def _median_prosody(stats: list[VoiceStats]) -> tuple[float | None, float | None, float | None]:
    """Median pitch, level and rate over recordings, each over those where it was measured (None: none)."""
    def median(field: str) -> float | None:
        values = [v for s in stats if math.isfinite(v := getattr(s.prosody, field))]
        return float(np.median(values)) if values else None

    return median("pitch_hz"), median("energy_db"), median("rate_per_s")


def baseline_from_stats(stats: list[VoiceStats], name: str, sources: list[str] | None = None) -> NeutralBaseline:
    """A baseline from ≥ 2 calm recordings' stats: MFCC mean and std across recordings, median prosody.

    Every recording must hold voiced speech: silence or hiss would drag the level reference down (one clip of
    -70 dBFS hiss beside speech: -44 dB) and two silences "sound alike". ``sources`` names them in that error
    (default: by position)."""
    if len(stats) < 2:
        raise BaselineError(f"a baseline needs at least 2 recordings (spread across them), got {len(stats)}")
    if silent := [i for i, s in enumerate(stats) if not math.isfinite(s.prosody.pitch_hz)]:
        named = ", ".join(sources[i] if sources else f"recording {i + 1} of {len(stats)}" for i in silent)
        raise BaselineError(f"{named}: holds no voiced speech (silence or noise); a baseline needs calm speech in "
                            "every recording")
    means = np.stack([s.mfcc_mean for s in stats])
    if not means.std(axis=0).any():
        raise BaselineError(f"the {len(stats)} recordings sound exactly alike (the same recording more than once?): "
                            "a baseline needs different calm recordings")
    pitch, energy, rate = _median_prosody(stats)
    return NeutralBaseline(means.mean(axis=0), means.std(axis=0), name, pitch, energy, rate)


def auto_baseline(stats: list[VoiceStats], cfg: Config, name: str = "personal-auto", since: str | None = None,
                  ) -> NeutralBaseline:
    """A person's baseline from their own recordings whatever their mood (≥ 2): their median pitch, level and rate
    (medians, so a few very emotional diaries do not move them), with the MFCC centre and spread of the reference
    nearest their pitch.

    The MFCC part is not the person's own: measured (cnn-bilstm-mfcc MODEL_CARD, "Baselines"), a spread taken across
    moods is about twice the calm spread the network was trained against, its input flattens and it hears
    sadness everywhere (ko_emotional test UAR 0.533 → 0.433).
    """
    if len(stats) < 2:
        raise BaselineError(f"a baseline needs at least 2 recordings, got {len(stats)}")
    pitch, energy, rate = _median_prosody(stats)
    reference = resolve_baseline("auto", cfg, pitch_hz=pitch)
    return NeutralBaseline(reference.mean, reference.std, name, pitch, energy, rate, len(stats), since)


def build_baseline(clips: list[np.ndarray], name: str = "personal", cfg: AudioConfig | None = None,
                   sr: int = SAMPLE_RATE, sources: list[str] | None = None) -> NeutralBaseline:
    """A personal baseline from ≥ 2 neutral clips: mean and std across the per-file means, plus median prosody.
    ``sources`` names the clips in errors (default: by position)."""
    cfg = cfg or default_config().audio
    if len(clips) < 2:
        raise BaselineError(f"a baseline needs at least 2 neutral clips (std across clips), got {len(clips)}")
    return baseline_from_stats([voice_stats(c, cfg, sr) for c in clips], name, sources)


def resolve_baseline(spec: str | NeutralBaseline, cfg: Config | None = None,
                     pitch_hz: float | None = None) -> NeutralBaseline:
    """``"male"`` / ``"female"`` (any name in [audio.baselines]), a path to a baseline JSON, ``"auto"``, or a
    ``NeutralBaseline`` already built (returned as it is).

    ``"auto"`` takes the configured baseline whose reference pitch is nearest (in semitones)
    to ``pitch_hz``, the speaker's measured median pitch; without one, the first configured.
    """
    if isinstance(spec, NeutralBaseline):
        return spec
    cfg = cfg or default_config()
    if spec == "auto":
        named = {k: b for k, b in cfg.audio.baselines.items() if b.pitch_hz}
        spec = next(iter(cfg.audio.baselines))
        if pitch_hz and math.isfinite(pitch_hz) and named:
            spec = min(named, key=lambda k: abs(math.log2(pitch_hz / named[k].pitch_hz)))
    if spec in cfg.audio.baselines:
        return NeutralBaseline.from_config(spec, cfg.audio)
    if Path(spec).is_file():
        return NeutralBaseline.load_json(spec)
    raise ModelError(f"baseline {spec!r} is neither one of {sorted(cfg.audio.baselines)} nor an existing JSON file")
