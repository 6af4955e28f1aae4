"""fusion.audio: one decode of any container into 16 kHz mono, clear errors, repair warnings."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import av
import numpy as np
import odd_audio
import pytest
import soundfile as sf

from fusion.audio import (
    SAMPLE_RATE,
    Audio,
    audio_from_array,
    container_format,
    declared_duration,
    load_audio,
    sniff_format,
)
from fusion.errors import InputError
from fusion.levels import audio_warnings

CLIP = "speech/ko_transcribed/pfa/pfa00004.flac"

# (file name, container, codec, sample rate, layout): what phones and browsers produce.
FORMATS = [
    ("stereo48k.wav", "wav", "pcm_s16le", 48000, "stereo"),
    ("mono8k.wav", "wav", "pcm_s16le", 8000, "mono"),
    ("clip.mp3", "mp3", "libmp3lame", 44100, "stereo"),
    ("clip.m4a", "mp4", "aac", 44100, "stereo"),
    ("clip.ogg", "ogg", "libopus", 48000, "mono"),
    ("clip.webm", "webm", "libopus", 48000, "stereo"),
    ("clip.flac", "flac", "flac", 22050, "mono"),
]


@pytest.fixture(scope="module")
def reference(shared_data) -> Audio:
    return load_audio(shared_data / CLIP)


def encode(reference: Audio, dst, container: str, codec: str, rate: int, layout: str) -> None:
    """Write ``reference`` with PyAV's bundled FFmpeg encoders (no system ffmpeg needed)."""
    with av.open(str(dst), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if codec == "aac":
            stream.bit_rate = 128000
        frame = av.AudioFrame.from_ndarray(reference.samples[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = reference.sample_rate, 0
        resampler = av.AudioResampler(
            format=stream.format.name, layout=layout, rate=rate, frame_size=stream.codec_context.frame_size or None
        )
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_reference_clip_is_16k_mono_float32(reference, shared_data):
    assert reference.samples.dtype == np.float32 and reference.samples.ndim == 1
    assert reference.sample_rate == SAMPLE_RATE == 16000
    assert reference.source == str(shared_data / CLIP)
    assert reference.duration == pytest.approx(sf.info(shared_data / CLIP).duration, abs=1e-3)


@pytest.mark.parametrize("name,container,codec,rate,layout", FORMATS, ids=[f[0] for f in FORMATS])
def test_every_container_decodes_to_the_same_16k_mono_signal(reference, tmp_path, name, container, codec, rate, layout):
    path = tmp_path / name
    encode(reference, path, container, codec, rate, layout)
    audio = load_audio(path)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.sample_rate == 16000
    assert audio.original_sample_rate == rate
    assert audio.channels == (2 if layout == "stereo" else 1)
    assert abs(audio.duration - reference.duration) < 0.05
    assert correlation(audio.samples, reference.samples) > (0.98 if rate == 8000 else 0.995)


def test_nothing_is_written_beside_the_input(reference, tmp_path):
    path = tmp_path / "diary.wav"
    encode(reference, path, "wav", "pcm_s16le", 44100, "stereo")
    before = sorted(os.listdir(tmp_path))
    load_audio(path)
    assert sorted(os.listdir(tmp_path)) == before


def _missing(tmp_path):
    return tmp_path / "nope.wav", "file not found"


def _directory(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    return tmp_path / "folder.wav", "directory"


def _empty(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    return tmp_path / "empty.wav", "empty file"


def _text(tmp_path):
    (tmp_path / "notes.wav").write_text("오늘의 일기: 이건 오디오가 아니다\n" * 20, encoding="utf-8")
    return tmp_path / "notes.wav", "not a readable audio file"


def _truncated(tmp_path):
    sf.write(tmp_path / "full.wav", np.sin(np.arange(32000) / 10).astype(np.float32) * 0.3, 16000)
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.wav", "truncated"


def _header_only(tmp_path):
    sf.write(tmp_path / "full.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "hdr.wav").write_bytes((tmp_path / "full.wav").read_bytes()[:30])
    return tmp_path / "hdr.wav", "not a readable audio file"


def _zero_length(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    return tmp_path / "zero.wav", "no audio samples"


def _image(tmp_path):
    with av.open(str(tmp_path / "photo.png"), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    return tmp_path / "photo.png", "no audio stream"


@pytest.mark.parametrize(
    "make", [_missing, _directory, _empty, _text, _truncated, _header_only, _zero_length, _image],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_input_raises_input_error_naming_file_and_problem(tmp_path, make):
    path, problem = make(tmp_path)
    with pytest.raises(InputError) as info:
        load_audio(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def _without_root_file_access() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capability bounding set,
    so a root process (as in CI's container) is refused an unreadable file as any user is; root keeps the rest."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH (linux/capability.h)
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("check", ["before-decoding", "while-opening"])
def test_unreadable_file_raises_input_error(tmp_path, check):
    """A file without read permission is an InputError saying so, both from the up-front check and from the
    decoder's own open (a file that becomes unreadable between the two). Run in a child process that cannot
    override file permissions, so it holds as root too."""
    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    path.chmod(0)
    script = f"""
import sys
from pathlib import Path
from fusion import audio
from fusion.errors import InputError
if {check == "while-opening"!r}:
    audio._check_file = lambda path: None
try:
    audio.load_audio(Path(sys.argv[1]))
except InputError as exc:
    print(exc.path, "|", exc)
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env,
                           timeout=120, preexec_fn=_without_root_file_access if os.geteuid() == 0 else None)
    assert child.returncode == 0, child.stderr
    named, message = child.stdout.strip().split(" | ")
    assert named == str(path) and str(path) in message and "permission denied" in message, child.stdout


def test_nan_samples_in_a_float_wav_become_silence_with_a_warning(tmp_path):
    x = np.sin(np.arange(16000) / 8).astype(np.float32) * 0.3
    x[100:200] = np.nan
    x[300] = np.inf
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    audio = load_audio(tmp_path / "nan.wav")
    assert np.isfinite(audio.samples).all()
    assert any("NaN" in w for w in audio.warnings)
    assert any("NaN" in w for w in audio_warnings(audio))


def test_audio_from_array_mixes_resamples_and_repairs():
    t = np.arange(44100 * 2) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 220 * t)], axis=1).astype(np.float32)
    stereo[10, 0] = np.nan
    audio = audio_from_array(stereo, 44100, source="mic")
    assert audio.sample_rate == 16000 and audio.channels == 2 and audio.original_sample_rate == 44100
    assert audio.duration == pytest.approx(2.0, abs=1e-3)
    assert np.isfinite(audio.samples).all() and audio.warnings
    pcm = audio_from_array(np.full(16000, 16384, np.int16), 16000)
    assert pcm.samples.max() == pytest.approx(0.5, abs=1e-3)


def test_an_id3_tag_in_front_of_flac_does_not_hide_its_length(tmp_path):
    path = odd_audio.id3_flac(tmp_path / "tagged.flac", 7200)
    assert sniff_format(path.read_bytes()[:16]) == "mp3"  # what the first bytes alone say
    assert container_format(path) == "flac"
    assert declared_duration(path) == pytest.approx(7200, abs=1)
    with pytest.raises(InputError, match="too long: the file declares 7200 s, the limit is 60 s"):
        load_audio(path, max_duration_s=60)


def test_decoding_stops_at_the_limit_whatever_the_header_declares(tmp_path):
    path = odd_audio.joined_mp3(tmp_path / "vbr.mp3", rest_s=600)
    assert declared_duration(path) < 40  # the first frame's bitrate makes 602 s look like 32 s
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="too long: decoding passed 4. s, the limit is 45 s") as info:
            load_audio(path, max_duration_s=45)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.path == str(path)
    assert peak < 10e6, f"{peak / 1e6:.1f} MB: memory must follow the limit (602 s decoded would be 38 MB)"


def test_mp3s_of_different_rates_joined_with_cat_decode_whole(tmp_path):
    audio = load_audio(odd_audio.joined_mp3(tmp_path / "joined.mp3", rest_s=10))
    assert audio.duration == pytest.approx(12.0, abs=0.1)
    tone = audio.samples[int(5 * SAMPLE_RATE) : int(9 * SAMPLE_RATE)]
    assert np.sqrt(np.mean(tone**2)) > 0.1  # the 8 kHz part is there, not silence


def test_a_stream_without_a_decoder_is_a_clear_bad_input(tmp_path):
    path = odd_audio.wav_with_unknown_codec(tmp_path / "odd.wav")
    for check in (load_audio, declared_duration):
        with pytest.raises(InputError, match="has no decoder") as info:
            check(path)
        assert info.value.kind == "bad_input" and info.value.path == str(path)


def test_an_mp3_whose_guessed_length_is_too_long_still_decodes(tmp_path):
    path = tmp_path / "guess.mp3"
    path.write_bytes(odd_audio.mp3_bytes(8000, 4, 8_000) + odd_audio.mp3_bytes(44100, 20, 160_000))
    assert declared_duration(path) > 100  # guessed from the first frame's 8 kb/s
    assert load_audio(path, max_duration_s=60).duration == pytest.approx(24, abs=0.5)  # + encoder padding


_PEAK_RSS_CHILD = """
import resource, sys
from fusion.audio import load_audio
from fusion.errors import InputError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_audio(sys.argv[1], max_duration_s=float(sys.argv[2]))
    message = "decoded"
except InputError as exc:
    message = str(exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, "|", message)
"""


def _decode_in_child(path: Path, limit_s: float) -> tuple[int, str]:
    """(peak RSS growth in MB, the outcome) of ``load_audio(path, max_duration_s=limit_s)`` in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.run([sys.executable, "-c", _PEAK_RSS_CHILD, str(path), str(limit_s)], capture_output=True,
                           text=True, env=env, timeout=120)
    assert child.returncode == 0, child.stderr
    grown, message = child.stdout.strip().split(" | ")
    return int(grown), message


@pytest.mark.parametrize(("rate", "samples", "problem"), [
    (100, 1_000_000, "unsupported sample rate: 100 Hz"),  # 10,000 s in 2 MB: x160 when resampled
    (4000, 5_000_000, "too long: decoding passed 1250 s, the limit is 60 s"),
], ids=["100Hz", "4kHz"])
def test_a_packet_holding_hours_is_refused_before_it_is_resampled(tmp_path, rate, samples, problem):
    """One packet of PCM, its container declaring 10 s (as an upload passing the length check would): the decoder
    refuses it at the size of its bytes, never after resampling all of it (before: 3.7 GB and 446 MB peak growth)."""
    path = odd_audio.one_packet_mkv(tmp_path / "bomb.mkv", rate, samples, declared_s=10)
    assert declared_duration(path) == pytest.approx(10)
    grown, message = _decode_in_child(path, 60)
    assert message.startswith(f"{path}: ") and problem in message
    assert grown < 64, f"decoding grew the process by {grown} MB"


def test_a_long_packet_within_the_limit_is_resampled_in_slices(tmp_path):
    """1250 s in one packet at 4 kHz (80 MB at 16 kHz) decodes whole, without a resampler buffer for all of it
    on top (before: 446 MB peak growth, now about 160)."""
    path = odd_audio.one_packet_mkv(tmp_path / "long.mkv", 4000, 5_000_000)
    grown, message = _decode_in_child(path, 3600)
    assert message == "decoded"
    assert grown < 200, f"decoding grew the process by {grown} MB"


def test_slices_of_a_packed_stereo_frame_decode_as_the_whole_frame(tmp_path):
    t = np.arange(8000 * 25) / 8000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    stereo = np.stack([tone, -tone * 0.5], axis=1)
    sf.write(tmp_path / "one.wav", stereo, 8000, subtype="PCM_16")  # the same audio in the small packets of a WAV
    path = tmp_path / "one.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="stereo")
        frame = av.AudioFrame.from_ndarray((stereo * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    whole, sliced = load_audio(tmp_path / "one.wav"), load_audio(path)
    assert sliced.duration == pytest.approx(25, abs=0.01)
    assert np.abs(whole.samples - sliced.samples[: whole.samples.size]).max() < 1e-3


def test_a_damaged_aac_stream_is_named_as_such_never_as_a_permission_problem(tmp_path):
    """FFmpeg's AAC decoder rejects a damaged frame with a bare -1, which PyAV raises as EPERM: the frame is skipped
    like any rejected one, and a stream of nothing else is "damaged or unsupported" (before: "cannot read the file:
    permission denied (Operation not permitted)")."""
    partly = load_audio(odd_audio.damaged_m4a(tmp_path / "partly.m4a", 50))
    assert partly.duration > 1 and any("corrupt audio frame(s) were skipped" in w for w in partly.warnings)
    path = odd_audio.damaged_m4a(tmp_path / "wholly.m4a", None)
    with pytest.raises(InputError, match="damaged or unsupported audio stream") as info:
        load_audio(path)
    assert info.value.path == str(path) and "permission" not in str(info.value)


def test_a_long_recording_decodes_exactly_block_by_block(tmp_path, reference):
    """Ten minutes of real speech as FLAC (thousands of frames joined into blocks as they come): the samples
    are the file's own. (What the blocks save in memory is measured by ``bench/batch.py --long``.)"""
    path = tmp_path / "ten.flac"
    x = reference.samples
    sf.write(path, np.tile(x, 600 * SAMPLE_RATE // x.size + 1)[: 600 * SAMPLE_RATE], SAMPLE_RATE)
    expected, _ = sf.read(path, dtype="float32")
    assert np.array_equal(load_audio(path).samples, expected)
