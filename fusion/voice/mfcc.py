"""MFCC features of the seed's voice model: ``librosa.feature.mfcc(y, sr, n_mfcc=13)`` as (frames, 13).

Computed once over a whole recording in STFT blocks (a long diary stays memory-bounded),
then sliced per time span into 100-frame windows.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import scipy.fft

from fusion.audio import SAMPLE_RATE

N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
TOP_DB = 80.0
WINDOW_HOP = 50          # frames between window starts inside a long span (50 % overlap)
MFCC_BLOCK_FRAMES = 2048  # frames per STFT block (~65 s of audio, ~35 MB of spectrogram)

Span = tuple[float, float]


def mfcc(samples: np.ndarray, sr: int = SAMPLE_RATE, n_mfcc: int = 13) -> np.ndarray:
    """``librosa.feature.mfcc(y, sr, n_mfcc).T`` as (frames, n_mfcc), computed in STFT blocks.

    Equal to the one-shot librosa call (same zero centre padding, same global 80 dB floor),
    but a 30-minute recording never holds its linear spectrogram, nor a padded copy of itself:
    only its log-mel blocks (128 values a frame) wait for the global floor.
    """
    y = np.asarray(samples, dtype=np.float32)
    n_frames = 1 + len(y) // HOP_LENGTH
    if n_frames <= MFCC_BLOCK_FRAMES:
        return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc).T
    mel_fb = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    blocks = []
    for a in range(0, n_frames, MFCC_BLOCK_FRAMES):
        seg = _centred_frames(y, a, min(a + MFCC_BLOCK_FRAMES, n_frames))
        power = np.abs(librosa.stft(seg, n_fft=N_FFT, hop_length=HOP_LENGTH, center=False)) ** 2
        blocks.append(librosa.power_to_db(mel_fb @ power, top_db=None))
    floor = max(float(block.max()) for block in blocks) - TOP_DB
    coeffs = [scipy.fft.dct(np.maximum(block, floor), axis=0, type=2, norm="ortho")[:n_mfcc] for block in blocks]
    return np.concatenate(coeffs, axis=1).T.astype(np.float32)


def _centred_frames(y: np.ndarray, a: int, b: int) -> np.ndarray:
    """The samples under frames ``a``..``b - 1`` of a centred STFT, zeros beyond either end of ``y``."""
    lo = a * HOP_LENGTH - N_FFT // 2
    hi = (b - 1) * HOP_LENGTH + N_FFT // 2
    seg = y[max(lo, 0):max(min(hi, len(y)), 0)]
    return np.pad(seg, (max(-lo, 0), max(hi - len(y), 0)))


def pad_or_cut(seq: np.ndarray, frames: int = 100) -> np.ndarray:
    """Zero-pad or cut a (frames, n_mfcc) sequence to exactly ``frames`` rows, as the original."""
    if len(seq) >= frames:
        return seq[:frames]
    return np.pad(seq, ((0, frames - len(seq)), (0, 0)))


def span_frames(span: Span, n_frames: int, sr: int = SAMPLE_RATE, min_frames: int = 0) -> tuple[int, int]:
    """MFCC frame range [first, last) covering a (start_s, end_s) span, clipped to the recording.

    A span shorter than ``min_frames`` grows evenly on both sides (as far as the recording
    allows), so a short sentence is heard in its own context rather than padded with zeros.
    """
    start, end = span
    first = min(max(int(math.floor(start * sr / HOP_LENGTH)), 0), n_frames)
    last = min(max(int(math.ceil(end * sr / HOP_LENGTH)), first), n_frames)
    missing = min_frames - (last - first)
    if missing > 0 and first < n_frames:
        first = max(0, min(first - missing // 2, n_frames - min_frames))
        last = min(n_frames, first + min_frames)
    return first, last


def window_starts(n: int, frames: int = 100, hop: int = WINDOW_HOP) -> list[int]:
    """Start offsets of overlapping ``frames``-long windows over ``n`` frames (last one flush with the end)."""
    if n <= frames:
        return [0]
    starts = list(range(0, n - frames + 1, hop))
    if starts[-1] != n - frames:
        starts.append(n - frames)
    return starts


def clip_mean(samples: np.ndarray, n_mfcc: int = 13, frames: int = 100) -> np.ndarray:
    """The original's per-file neutral statistic: mean over the padded/cut (frames, n_mfcc) sequence."""
    return pad_or_cut(mfcc(samples, n_mfcc=n_mfcc), frames).mean(axis=0)
