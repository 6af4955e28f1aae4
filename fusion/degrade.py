"""Seeded recording conditions a phone diary meets: a codec, noise, a room, a quiet microphone.

A condition is a name, or names joined by ``+`` and applied left to right (``near+opus16``):

- ``clean``: the recording as it is;
- ``opus16``, ``aac32``: an Opus (Ogg) or AAC (ADTS) round trip at that many kbit/s, 16 kHz;
- ``amr``: an AMR-NB round trip (8 kHz, 12.2 kbit/s: nothing above 4 kHz survives);
- ``pink15``, ``babble5``, ...: pink noise or the babble of other talkers at that SNR in dB,
  the speech's power measured over its voiced frames (``speech_power``);
- ``near``: a phone held close in a furnished room: RT60 drawn from 0.3-0.6 s, the talker at the
  distance that gives a direct-to-reverberant ratio of about +5 dB;
- ``far``: the phone on a table across the room: RT60 0.5 s, the talker 2.5-3.5 m away;
- ``gain-25``: the level lowered by that many dB.

Codecs go through PyAV and are decoded back by the product's own decoder (``fusion.audio``);
rooms are image-method impulse responses from pyroomacoustics; pink noise comes from
``colorednoise``. Every draw comes from one ``numpy`` generator seeded per clip
(``clip_seed``), so the same seed gives the same samples in any order.
"""

from __future__ import annotations

import importlib
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.audio import SAMPLE_RATE, audio_from_array, load_audio
from fusion.errors import MissingExtra
from fusion.levels import voiced_spans

# Codec name → (container, encoder, encoding sample rate, bit rate or None for the condition's).
CODECS = {"opus": ("ogg", "libopus", 16000, None), "aac": ("adts", "aac", 16000, None),
          "amr": ("amr", "libopencore_amrnb", 8000, 12200)}
NOISES = ("pink", "babble")
BABBLE_TALKERS = 4
NEAR_RT60_S = (0.3, 0.6)
NEAR_DRR_DB = 5.0
FAR_RT60_S = 0.5
FAR_DISTANCE_M = (2.5, 3.5)
ROOM_MIN_M, ROOM_MAX_M = (3.5, 3.0, 2.4), (6.0, 5.0, 3.0)
DIRECT_WINDOW_S = 0.0025          # either side of the direct path's peak: the direct sound of an impulse response
_PATTERN = re.compile(r"^(clean|amr|near|far|(opus|aac)(\d+)|(pink|babble)(-?\d+)|gain(-\d+))$")


@dataclass(frozen=True)
class Step:
    """One named change: ``kind`` (clean, opus, aac, amr, pink, babble, near, far, gain) and its number."""

    kind: str
    value: float | None = None


def _optional(package: str):
    """An ``eval`` extra's package, or ``MissingExtra`` naming it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingExtra(package, "eval", "fusion.degrade's rooms and noise") from exc


def parse_condition(name: str) -> tuple[Step, ...]:
    """The steps of a condition name; an unknown name is a ``ValueError`` listing the known forms."""
    steps = []
    for part in name.strip().lower().split("+"):
        m = _PATTERN.match(part.strip())
        if m is None:
            raise ValueError(f"unknown recording condition {part!r} in {name!r}; known: clean, opus<kbps>, "
                             "aac<kbps>, amr, pink<snr dB>, babble<snr dB>, near, far, gain-<dB>")
        if m.group(2):
            steps.append(Step(m.group(2), float(m.group(3))))
        elif m.group(4):
            steps.append(Step(m.group(4), float(m.group(5))))
        elif m.group(6):
            steps.append(Step("gain", float(m.group(6))))
        else:
            steps.append(Step(m.group(1)))
    return tuple(s for s in steps if s.kind != "clean")


def parse_conditions(text: str) -> list[str]:
    """A comma-separated list of condition names, each checked."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--degrade needs at least one condition, e.g. clean,opus16,pink15")
    for n in names:
        parse_condition(n)
    return names


def needs_babble(conditions: list[str]) -> bool:
    return any(s.kind == "babble" for c in conditions for s in parse_condition(c))


def clip_seed(seed: int, name: str) -> int:
    """A clip's own seed: the run's seed and the clip's name, independent of the order clips come in."""
    return zlib.crc32(f"{seed}:{name}".encode())


def degrade(samples: np.ndarray, condition: str, seed: int, babble: list[np.ndarray] | None = None) -> np.ndarray:
    """``samples`` (16 kHz mono float32) under ``condition``; ``babble`` holds the other talkers' clips."""
    rng = np.random.default_rng(seed)
    y = np.asarray(samples, dtype=np.float32)
    for step in parse_condition(condition):
        if step.kind in CODECS:
            y = codec_round_trip(y, step.kind, step.value)
        elif step.kind in NOISES:
            noise = pink_noise(y.size, rng) if step.kind == "pink" else babble_noise(y.size, rng, babble)
            y = add_noise(y, noise, step.value)
        elif step.kind in ("near", "far"):
            y = reverberate(y, room_response(rng, far=step.kind == "far"))
        else:
            y = (y * 10.0 ** (step.value / 20.0)).astype(np.float32)
    return y


def codec_round_trip(samples: np.ndarray, codec: str, kbps: float | None = None) -> np.ndarray:
    """``samples`` encoded with ``codec`` through PyAV, then decoded as the product decodes an upload; a PyAV built
    without the codec's encoder is a ``ValueError`` naming it."""
    import av

    container, encoder, rate, fixed_rate = CODECS[codec]
    if encoder not in av.codecs_available:
        raise ValueError(f"recording condition {codec!r} needs the {encoder} encoder, which this PyAV "
                         f"({av.__version__}) was built without (av 18.1.0 has it)")
    with tempfile.TemporaryDirectory(prefix="fusion-codec-") as tmp:
        path = Path(tmp) / f"clip.{container}"
        with av.open(str(path), "w", format=container) as out:
            stream = out.add_stream(encoder, rate=rate, layout="mono")
            stream.bit_rate = int(fixed_rate or kbps * 1000)
            resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
            frame = av.AudioFrame.from_ndarray(np.clip(samples, -1, 1).reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for part in [*resampler.resample(frame), *resampler.resample(None)]:
                out.mux(stream.encode(part))
            out.mux(stream.encode(None))
        return load_audio(path).samples


def speech_power(samples: np.ndarray) -> float:
    """Mean power over the voiced spans the product finds (the whole clip when it finds none)."""
    spans = voiced_spans(audio_from_array(samples, SAMPLE_RATE))
    parts = [samples[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in spans] or [samples]
    voiced = np.concatenate(parts).astype(np.float64)
    return float(np.mean(voiced ** 2)) if voiced.size else 0.0


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``samples`` plus ``noise`` scaled so speech power over noise power is ``snr_db``."""
    noise = noise.astype(np.float64)
    scale = np.sqrt(speech_power(samples) / (np.mean(noise ** 2) * 10.0 ** (snr_db / 10.0)))
    return (samples + scale * noise).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of 1/f noise."""
    return _optional("colorednoise").powerlaw_psd_gaussian(1, n, random_state=rng)


def babble_noise(n: int, rng: np.random.Generator, clips: list[np.ndarray] | None) -> np.ndarray:
    """``BABBLE_TALKERS`` clips drawn from ``clips``, each looped from a random point to ``n`` samples at
    equal level, summed: a room of other people talking."""
    if not clips or len(clips) < BABBLE_TALKERS:
        raise ValueError(f"babble needs at least {BABBLE_TALKERS} clips of other talkers")
    out = np.zeros(n)
    for k in rng.choice(len(clips), BABBLE_TALKERS, replace=False):
        clip = clips[k].astype(np.float64)
        looped = np.roll(np.resize(clip, max(n, clip.size)), -int(rng.integers(clip.size)))[:n]
        out += looped / max(np.sqrt(np.mean(looped ** 2)), 1e-9)
    return out


def room_response(rng: np.random.Generator, far: bool = False) -> np.ndarray:
    """An image-method impulse response of a shoebox room drawn from ``rng`` (see the module doc)."""
    dims = rng.uniform(ROOM_MIN_M, ROOM_MAX_M)
    if far:
        return _shoebox(dims, FAR_RT60_S, rng.uniform(*FAR_DISTANCE_M))
    rt60 = rng.uniform(*NEAR_RT60_S)
    distance = 0.057 * np.sqrt(np.prod(dims) / rt60) * 10.0 ** (-NEAR_DRR_DB / 20.0)  # Sabine's critical distance
    rir = _shoebox(dims, rt60, distance)
    return _shoebox(dims, rt60, distance * 10.0 ** ((direct_to_reverberant(rir) - NEAR_DRR_DB) / 20.0))


def _shoebox(dims: np.ndarray, rt60: float, distance: float) -> np.ndarray:
    """The response at ``distance`` m from a talker at 1.5 m height, across the room's middle."""
    pra = _optional("pyroomacoustics")
    distance = min(distance, dims[0] - 1.0)
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=max_order)
    talker = np.array([(dims[0] - distance) / 2, dims[1] / 2, 1.5])
    room.add_source(talker)
    room.add_microphone(talker + [distance, 0.0, 0.0])
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64)


def direct_to_reverberant(rir: np.ndarray) -> float:
    """DRR in dB: the energy within ``DIRECT_WINDOW_S`` of the strongest tap against the rest."""
    peak, w = int(np.argmax(np.abs(rir))), int(DIRECT_WINDOW_S * SAMPLE_RATE)
    direct = float(np.sum(rir[max(0, peak - w):peak + w] ** 2))
    return 10.0 * np.log10(direct / max(float(np.sum(rir ** 2)) - direct, 1e-12))


def reverberate(samples: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``samples`` heard through ``rir``: aligned on the direct path, the original length and RMS kept."""
    from scipy.signal import fftconvolve

    start = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(samples.astype(np.float64), rir)[start:start + samples.size]
    level = np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / max(np.sqrt(np.mean(wet ** 2)), 1e-12)
    return (wet * level).astype(np.float32)


def measured_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """The SNR in dB of ``noisy`` against its ``clean`` source, speech power as ``add_noise`` measures it."""
    noise = noisy.astype(np.float64) - clean
    return 10.0 * np.log10(speech_power(clean) / float(np.mean(noise ** 2)))

