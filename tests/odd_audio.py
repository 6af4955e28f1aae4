"""Odd but real recordings, built in a few lines: what an outside probe fed the decoder and the service."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
import soundfile as sf

ID3_TAG = b"ID3\x04\0\0\0\0\0\x10" + bytes(16)  # an ID3v2.4 header declaring a 16-byte tag, then the tag


def id3_flac(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A FLAC of silence with an ID3 tag in front: its first bytes say "MP3", its header says ``seconds``."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, 1, format="FLAC", subtype="PCM_16") as out:
        block = np.zeros(rate * 60, np.int16)
        for start in range(0, int(seconds * rate), block.size):
            out.write(block[: min(block.size, int(seconds * rate) - start)])
    path.write_bytes(ID3_TAG + buf.getvalue())
    return path


def mp3_bytes(rate: int, seconds: float, bit_rate: int) -> bytes:
    """A CBR MP3 of a 220 Hz tone without a Xing header (demuxers then guess its length from the first frame)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3", options={"write_xing": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
        step = 1152 if rate >= 32000 else 576
        for i in range(0, x.size, step):
            frame = av.AudioFrame.from_ndarray(x[None, i : i + step], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def joined_mp3(path: Path, first_s: float = 2.0, rest_s: float = 60.0) -> Path:
    """``cat`` of a 44.1 kHz 160 kb/s MP3 and an 8 kHz 8 kb/s one: two sample rates, a length read as far too short."""
    path.write_bytes(mp3_bytes(44100, first_s, 160_000) + mp3_bytes(8000, rest_s, 8_000))
    return path


def wav_with_unknown_codec(path: Path, seconds: float = 1.0) -> Path:
    """A RIFF/WAVE file whose format tag (0x1234) no decoder knows."""
    data = (np.random.default_rng(0).normal(0, 1000, int(16000 * seconds))).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 0x1234, 1, 16000, 32000, 2, 16)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    return path


def one_packet_mkv(path: Path, rate: int, samples: int, declared_s: float | None = None) -> Path:
    """Matroska holding ``samples`` of mono PCM at ``rate`` in a single packet: a 2 MB file can hold hours at 100 Hz.

    ``declared_s`` overwrites the Segment Duration (EBML id 0x4489, an 8-byte float in milliseconds), as an upload
    that claims to be short would.
    """
    x = (np.random.default_rng(0).standard_normal((1, samples)) * 3000).astype(np.int16)
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(x, format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    if declared_s is not None:
        data = bytearray(path.read_bytes())
        at = data.index(b"\x44\x89\x88") + 3
        data[at : at + 8] = struct.pack(">d", declared_s * 1000)
        path.write_bytes(bytes(data))
    return path


def damaged_m4a(path: Path, changed_bytes: int | None) -> Path:
    """A 3 s AAC tone in MP4 whose audio payload is damaged: ``changed_bytes`` random bytes, or (None) all 0xFF."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100, layout="mono")
        x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(44100 * 3) / 44100)).astype(np.float32)
        for i in range(0, x.size, 1024):
            frame = av.AudioFrame.from_ndarray(x[None, i : i + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = bytearray(buf.getvalue())
    start, end = data.index(b"mdat") + 4, data.index(b"moov") - 4  # the payload: the moov index comes after it
    if changed_bytes is None:
        data[start:end] = b"\xff" * (end - start)
    else:
        rng = np.random.default_rng(0)
        for at in rng.integers(start, end, changed_bytes):
            data[at] = rng.integers(0, 256)
    path.write_bytes(bytes(data))
    return path
