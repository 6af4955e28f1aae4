"""Decode a recording once into 16 kHz mono float32.

Every later stage (STT, the voice branch, the report's warnings) reads the one
``Audio`` value made here; nothing decodes the file again and nothing is written
beside it. Decoding goes through PyAV (FFmpeg bundled in the wheel), so WAV,
FLAC, MP3, M4A/AAC, OGG/Opus and WebM at any rate and channel count work without
a system FFmpeg.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import librosa
import numpy as np

from fusion.config import default_config
from fusion.errors import InputError
from fusion.files import DANGLING

SAMPLE_RATE = 16_000  # what Whisper, the voice encoder and the MFCC baselines hear: a fact, not a setting
# Formats whose header states the exact length, so a shorter decode means a cut file.
_EXACT_LENGTH_FORMATS = {"wav", "w64", "aiff", "flac", "caf"}
_TRUNCATION_TOLERANCE_S = 0.05
_MAX_BAD_PACKETS = 1000
_MAX_ID3_TAGS = 8
# Sample rates a recording can have: below 4 kHz no speech band survives; FFmpeg's encoders stop at 768 kHz.
_MIN_SAMPLE_RATE, _MAX_SAMPLE_RATE = 4000, 768_000
# Seconds of input resampled at a time: one packet holding hours of audio never becomes one huge buffer.
_RESAMPLE_SLICE_S = 10.0
# Decoded frames are joined into blocks of this many samples (65 s at 16 kHz) as they come: thousands of frame-sized
# buffers, all freed at the end, would leave the heap holding the recording's size once more (30 minutes: 110 MB).
_BLOCK_SAMPLES = 1 << 20


@dataclass(frozen=True, eq=False)
class Audio:
    """A decoded recording: mono float32 samples at ``SAMPLE_RATE`` and where they came from.

    ``warnings`` holds what decoding repaired (NaN samples, skipped corrupt frames).
    """

    samples: np.ndarray
    source: str
    original_sample_rate: int
    channels: int
    sample_rate: int = SAMPLE_RATE
    warnings: tuple[str, ...] = field(default=())

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, *, max_duration_s: float | None = None) -> Audio:
    """Decode any audio file PyAV can read into mono float32 at ``sample_rate``.

    Decoding stops once it passes ``max_duration_s`` (default: ``[audio_input] max_duration_s``),
    whatever length the header declares, so memory follows the limit, not the file.
    Raises ``InputError`` naming the file for a missing, unreadable, empty, too long,
    non-audio, undecodable, truncated or zero-length input.
    """
    path = Path(path)
    _check_file(path)
    limit = default_config().audio_input.max_duration_s if max_duration_s is None else max_duration_s
    with open_audio(path) as (container, stream):
        original_rate, channels = (stream.codec_context.sample_rate or stream.rate or 0,
                                   stream.codec_context.channels or 0)
        declared = _declared_duration(container, stream)
        fmt = container.format.name.split(",")
        if declared is not None and declared > limit and set(fmt) & _EXACT_LENGTH_FORMATS:  # an MP3's is a guess
            raise InputError(path, _too_long(declared, limit, "the file declares"))
        samples, bad_frames = _decode_stream(container, stream, sample_rate, limit, path)

    if samples.size == 0:
        problem = ("damaged or unsupported audio stream: no frame could be decoded" if bad_frames
                   else "contains no audio samples (zero length)")
        raise InputError(path, problem)
    decoded = samples.size / sample_rate
    if declared is not None and set(fmt) & _EXACT_LENGTH_FORMATS and decoded < declared - _TRUNCATION_TOLERANCE_S:
        raise InputError(path, f"truncated: the header declares {declared:.2f} s "
                               f"but only {decoded:.2f} s could be decoded")
    if "wav" in fmt and (missing := _riff_missing_bytes(path)):
        raise InputError(path, f"truncated: the WAV header declares {missing} more bytes of audio than the file holds")
    warnings = [f"{bad_frames} corrupt audio frame(s) were skipped while decoding"] if bad_frames else []
    samples, nonfinite = _finite(samples)
    warnings += nonfinite
    return Audio(samples, str(path), int(original_rate), int(channels), sample_rate, tuple(warnings))


def declared_duration(path: str | Path) -> float:
    """Seconds of audio the file declares (header, else the sum of its packets),
    opened exactly as ``load_audio`` opens it.

    A quick check before queueing; ``load_audio``'s own limit is what bounds the work.
    """
    path = Path(path)
    _check_file(path)
    with open_audio(path) as (container, stream):
        declared = _declared_duration(container, stream)
        if declared is None:
            declared = float(sum(p.duration or 0 for p in container.demux(stream)) * (stream.time_base or 0))
    return declared


def sniff_format(head: bytes) -> str | None:
    """The FFmpeg demuxer for a recording's first bytes, or None when they name no audio container we know.

    Deciding from the bytes (never the file name) and forcing that demuxer keeps
    FFmpeg's own probing, which also opens playlists and other files, out of reach.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mov"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "matroska"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"caff":
        return "caf"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "aac" if head[1] & 0x06 == 0 else "mp3"  # ADTS has layer bits 00, MPEG audio does not
    return None


def container_format(path: str | Path) -> str | None:
    """``sniff_format`` of the file's first bytes after any ID3v2 tags (FFmpeg skips them for every demuxer).

    A tag in front of FLAC or WAV data names the data's demuxer, so the length check and the
    decoding read the same container; a tag in front of anything else stays "mp3".
    """
    offset = 0
    with open(path, "rb") as fh:
        for _ in range(_MAX_ID3_TAGS):
            fh.seek(offset)
            head = fh.read(16)
            if head[:3] != b"ID3" or len(head) < 10:
                return sniff_format(head)
            size = int.from_bytes(bytes(b & 0x7F for b in head[6:10]), "big")  # syncsafe: 7 bits a byte
            offset += 10 + size + (10 if head[5] & 0x10 else 0)  # header, tag, optional footer
        return "mp3"


@contextmanager
def open_audio(path: Path) -> Iterator[tuple[av.container.InputContainer, av.audio.stream.AudioStream]]:
    """The container and its first audio stream, with the demuxer ``container_format`` names (FFmpeg probes only
    what it does not know); FFmpeg and OS errors inside the block become ``InputError`` naming the file."""
    try:
        with av.open(str(path), mode="r", format=container_format(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InputError(path, "no audio stream in the file (is it a video without sound or an image?)")
            stream = container.streams.audio[0]
            if stream.codec_context is None:
                raise InputError(path, "the audio is in a codec that has no decoder here: "
                                       "convert the recording to WAV, FLAC, MP3, AAC or Opus")
            yield container, stream
    except InputError:
        raise
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        raise InputError(path, "not a readable audio file (unknown format or corrupt data)") from exc
    except av.error.FFmpegError as exc:  # before OSError: FFmpeg's -1 ("return -1" in a demuxer) reads as EPERM
        raise InputError(path, f"damaged or unsupported audio stream (FFmpeg: {exc.strerror})") from exc
    except PermissionError as exc:
        raise InputError(path, f"cannot read the file: permission denied ({exc.strerror})") from exc
    except OSError as exc:
        raise InputError(path, f"cannot read the file: {exc.strerror or exc}") from exc


def audio_from_array(samples: np.ndarray, sample_rate: int, source: str = "<array>") -> Audio:
    """Wrap samples a caller already holds: mixed to mono, resampled to ``SAMPLE_RATE``.

    ``samples`` is 1-D, or 2-D as (samples, channels); integer PCM is scaled to [-1, 1].
    """
    x = np.asarray(samples)
    if x.ndim not in (1, 2) or x.size == 0:
        raise InputError(source, f"expected a non-empty 1-D or (samples, channels) array, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    channels = 1 if x.ndim == 1 else x.shape[1]
    if x.ndim == 2:
        x = x.mean(axis=1)
    x, warnings = _finite(x)
    if sample_rate != SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq").astype(np.float32)
    return Audio(np.ascontiguousarray(x), source, int(sample_rate), int(channels), SAMPLE_RATE, tuple(warnings))


def _check_file(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise InputError(path, DANGLING)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not an audio file")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "cannot read the file: permission denied")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")


def _declared_duration(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _riff_missing_bytes(path: Path) -> int:
    """Bytes the WAV ``data`` chunk claims beyond the end of the file (FFmpeg silently decodes what is there)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if fh.read(12)[:4] != b"RIFF":
            return 0
        while len(header := fh.read(8)) == 8:
            chunk, length = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"data":
                streaming = length in (0, 0xFFFFFFFF)
                return 0 if streaming else max(0, fh.tell() + length - size)
            fh.seek(length + (length & 1), os.SEEK_CUR)
    return 0


def _decode_stream(container, stream, sample_rate: int, limit_s: float, path: Path) -> tuple[np.ndarray, int]:
    """Decode packet by packet, resampled, until ``limit_s`` seconds; packets the decoder rejects are counted and
    skipped (whatever FFmpeg error it gives: a damaged AAC frame is often a bare -1, which PyAV calls EPERM).

    Each decoded frame is checked before it is resampled, so a packet that holds more than the limit (whatever
    the container declares) is refused at the size of its own bytes, never at the size of its resampled output.
    """
    out = _Resampler(sample_rate)
    bad = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            bad += 1
            if bad > _MAX_BAD_PACKETS:
                break
            continue
        for frame in frames:
            if not _MIN_SAMPLE_RATE <= frame.sample_rate <= _MAX_SAMPLE_RATE:
                raise InputError(path, f"unsupported sample rate: {frame.sample_rate} Hz (a recording has "
                                       f"{_MIN_SAMPLE_RATE} to {_MAX_SAMPLE_RATE} Hz)")
            seconds = out.size / sample_rate + frame.samples / frame.sample_rate
            if seconds > limit_s:
                raise InputError(path, _too_long(seconds, limit_s, "decoding passed"))
            out.add(frame)
    return out.samples(), bad


class _Resampler:
    """Frames of any format to mono float32 at one rate; a new resampler whenever the input format changes
    (MP3s of different rates joined with ``cat``, a stream that switches layout)."""

    def __init__(self, rate: int):
        self.rate, self.size, self.joined = rate, 0, 0
        self.chunks: list[np.ndarray] = []  # joined blocks
        self.frames: list[np.ndarray] = []  # frames since the last block
        self.setup: tuple | None = None
        self.resampler: av.AudioResampler | None = None

    def add(self, frame: av.AudioFrame) -> None:
        setup = (frame.format.name, frame.layout.name, frame.sample_rate)
        if setup != self.setup:
            self._flush()
            self.setup, self.resampler = setup, av.AudioResampler(format="flt", layout="mono", rate=self.rate)
        for part in _slices(frame):
            part.pts = None
            self._take(self.resampler.resample(part))

    def samples(self) -> np.ndarray:
        self._flush()
        self._join()
        return np.concatenate(self.chunks).astype(np.float32, copy=False) if self.chunks else np.zeros(0, np.float32)

    def _flush(self) -> None:
        if self.resampler is not None:
            self._take(self.resampler.resample(None))
            self.resampler = None

    def _take(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            self.frames.append(out.to_ndarray().reshape(-1))
            self.size += self.frames[-1].size
        if self.size - self.joined >= _BLOCK_SAMPLES:
            self._join()

    def _join(self) -> None:
        if self.frames:
            self.chunks.append(np.concatenate(self.frames))
            self.frames, self.joined = [], self.size


def _slices(frame: av.AudioFrame) -> Iterator[av.AudioFrame]:
    """``frame`` in pieces of at most ``_RESAMPLE_SLICE_S`` seconds (the frame itself when it is that short)."""
    step = max(1, int(_RESAMPLE_SLICE_S * frame.sample_rate))
    if frame.samples <= step:
        yield frame
        return
    data = frame.to_ndarray()
    width = 1 if frame.format.is_planar else len(frame.layout.channels)  # packed: channels interleaved in one row
    for start in range(0, frame.samples, step):
        part = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start * width : (start + step) * width]),
                                          format=frame.format.name, layout=frame.layout.name)
        part.sample_rate = frame.sample_rate
        yield part


def _too_long(seconds: float, limit_s: float, how: str) -> str:
    return f"recording too long: {how} {seconds:.0f} s, the limit is {limit_s:.0f} s"


def _finite(samples: np.ndarray) -> tuple[np.ndarray, list[str]]:
    bad = ~np.isfinite(samples)
    if not bad.any():
        return samples, []
    fixed = np.where(bad, 0.0, samples).astype(np.float32)
    return fixed, [f"{int(bad.sum())} NaN/infinite sample(s) replaced by silence"]


__all__ = ["SAMPLE_RATE", "Audio", "load_audio", "declared_duration", "sniff_format", "container_format", "open_audio",
           "audio_from_array"]
