"""How well the recording lets a voice be heard: noise, room echo and bandwidth, estimated from the samples alone.

``assess`` reads one decoded recording and returns a ``Quality``:

- ``snr_db``: the voiced frames' power over the noise floor, the floor being a low percentile
  of the 25 ms frames' power (pauses between words hold only the room's noise);
- ``decay_s``: a reverberation time: -60 dB over the steeper half of the energy decays after the
  speech's loud frames (a room cannot let a sound die faster than it reverberates; close-talk
  speech stops within a tenth of a second); none under noise, which fills the decays;
- ``bandwidth_hz``: the highest frequency whose spectral level is within ``BAND_FLOOR_DB`` of
  the speech band's (an 8 kHz codec such as AMR-NB or a phone call leaves nothing above 4 kHz).

``[quality]`` in the config says when each is too poor (``QualityConfig``); the report carries
the figures and the reasons in words, and the voice-based alerts stand down on a poor recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.audio import SAMPLE_RATE
from fusion.config import QualityConfig
from fusion.levels import frame_rms

FRAME, HOP = 400, 160                  # 25 ms frames every 10 ms
NOISE_PERCENTILE = 10                  # the quietest tenth of the frames: the pauses' noise floor
SPEECH_PERCENTILE = 90                 # the loud frames whose decays are measured
SPEECH_BAND_HZ = (300.0, 3400.0)       # the telephone band every recording keeps
SPECTRUM_FRAME = 512                   # Hann frames of 32 ms whose power spectra are averaged
SPECTRUM_BLOCK = 1024                  # frames a block (33 s of audio: 10 MB of spectra)
BAND_FLOOR_DB = 50.0                   # below the speech band's level: no signal any more
DECAY_FRAMES = 8                       # 80 ms of falling energy make one decay
STEEPEST_SHARE = 0.5                   # the fastest half of the decays sets the room's time
DECAY_MIN_SNR_DB = 25.0                # below it noise fills the decays: no reverberation estimate
MAX_SNR_DB = 60.0


@dataclass(frozen=True)
class Quality:
    """Estimates of one recording, and what makes it too poor to judge a voice (empty: fine)."""

    snr_db: float
    decay_s: float | None
    bandwidth_hz: float
    problems: tuple[str, ...]


def frame_power_db(samples: np.ndarray) -> np.ndarray:
    """Power (dB) of 25 ms frames every 10 ms."""
    rms = frame_rms(np.asarray(samples, dtype=np.float32), FRAME, HOP)
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def snr_db(power_db: np.ndarray) -> float:
    """Mean power of the loudest half of the frames over the ``NOISE_PERCENTILE`` floor, in dB, noise taken out."""
    power = 10.0 ** (power_db / 10.0)
    floor = float(np.percentile(power, NOISE_PERCENTILE))
    speech = float(np.mean(power[power >= np.median(power)]))
    if floor <= 0.0 or speech <= floor:
        return MAX_SNR_DB if floor <= 0.0 else 0.0
    return float(min(10.0 * np.log10((speech - floor) / floor), MAX_SNR_DB))


def decay_time(power_db: np.ndarray) -> float | None:
    """Seconds to fall 60 dB at the steeper half of the decays after loud frames (None when speech never stops).

    A decay: ``DECAY_FRAMES`` frames falling all the way, from a frame within 6 dB of the loud frames'
    level, ending 10 dB above the noise floor; its slope is the least-squares line through them.
    """
    if power_db.size < DECAY_FRAMES:
        return None
    loud = np.percentile(power_db, SPEECH_PERCENTILE)
    floor = np.percentile(power_db, NOISE_PERCENTILE) + 10.0
    windows = np.lib.stride_tricks.sliding_window_view(power_db, DECAY_FRAMES)
    falling = (windows[:, 0] >= loud - 6.0) & np.all(np.diff(windows, axis=1) < 0, axis=1) & (windows[:, -1] > floor)
    if not falling.any():
        return None
    t = np.arange(DECAY_FRAMES) * HOP / SAMPLE_RATE
    t = t - t.mean()
    slopes = np.sort((windows[falling] - windows[falling].mean(axis=1, keepdims=True)) @ t / (t @ t))
    return float(-60.0 / np.mean(slopes[:max(1, int(slopes.size * STEEPEST_SHARE))]))


def bandwidth_hz(samples: np.ndarray) -> float:
    """The highest frequency within ``BAND_FLOOR_DB`` of the speech band's median level (0 for a clip shorter than
    one frame). The power spectra are summed ``SPECTRUM_BLOCK`` frames at a time, so a long recording's frames and
    spectra are never all in memory (30 minutes at once: 0.7 GB)."""
    n = samples.size // SPECTRUM_FRAME
    window = np.hanning(SPECTRUM_FRAME).astype(np.float32)
    total = np.zeros(SPECTRUM_FRAME // 2 + 1)
    for a in range(0, n, SPECTRUM_BLOCK):
        frames = np.asarray(samples[a * SPECTRUM_FRAME:min(a + SPECTRUM_BLOCK, n) * SPECTRUM_FRAME], np.float32)
        total += np.sum(np.abs(np.fft.rfft(frames.reshape(-1, SPECTRUM_FRAME) * window, axis=1)) ** 2, axis=0)
    psd = total / n if n else np.zeros(1)
    freqs = np.fft.rfftfreq(SPECTRUM_FRAME, 1.0 / SAMPLE_RATE)
    level = 10.0 * np.log10(psd + 1e-20)
    ref = np.median(level[(freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])])
    alive = np.flatnonzero(level >= ref - BAND_FLOOR_DB)
    return float(freqs[alive[-1]]) if alive.size else 0.0


def too_poor(quality: Quality) -> str:
    """The report's sentence for a recording too poor to judge a voice."""
    return ("The recording is too poor to judge the voice (" + "; ".join(quality.problems)
            + "): no alert is raised from it.")


def assess(samples: np.ndarray, cfg: QualityConfig) -> Quality:
    """The recording's estimates and, in words, each way it is too poor to judge a voice."""
    power = frame_power_db(samples)
    snr, band = snr_db(power), bandwidth_hz(samples)
    decay = decay_time(power) if snr >= DECAY_MIN_SNR_DB else None
    problems = []
    if snr < cfg.min_snr_db:
        problems.append(f"too noisy: speech about {snr:.0f} dB above the background (needs {cfg.min_snr_db:g})")
    if decay is not None and decay > cfg.max_decay_s:
        problems.append(f"too much room echo: sound takes about {decay:.2f} s to die away (at most "
                        f"{cfg.max_decay_s:g})")
    if band < cfg.min_bandwidth_hz:
        problems.append(f"narrowband: nothing above {band / 1000:.1f} kHz (a phone-call or AMR codec), "
                        f"needs {cfg.min_bandwidth_hz / 1000:g} kHz")
    return Quality(round(snr, 1), None if decay is None else round(decay, 2), round(band), tuple(problems))
