"""One recording in, one DiaryReport out: decode → stt → sentences → text / voice → combine.

:class:`Pipeline` holds the loaded models and is reused across recordings;
:func:`analyze` is the one function most users call.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from fusion import combine
from fusion import quality as quality_stage
from fusion import sentences as sentence_stage
from fusion.audio import Audio, load_audio
from fusion.config import Config, default_config
from fusion.dates import file_time
from fusion.levels import audio_warnings, voiced_spans
from fusion.report import (
    DiaryReport,
    FusedSummary,
    Models,
    Prosody,
    RecordingQuality,
    SentenceReport,
    TextSummary,
    VoiceSummary,
)
from fusion.stt import load_engine, transcribe_long
from fusion.text.model import Words, diary_text_scores, load_text_model, read_words
from fusion.voice import model as voice_model
from fusion.voice import prosody as prosody_stage
from fusion.voice.prosody import NeutralBaseline


class _Timer:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        yield
        self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - t0, 4)


def _dist(labels: tuple[str, ...], p: np.ndarray, digits: int = 4) -> dict[str, float]:
    return dict(zip(labels, np.round(np.asarray(p, dtype=float), digits).tolist()))


def _top(labels: tuple[str, ...], p: np.ndarray) -> str:
    return labels[int(np.argmax(p))]


@dataclass(frozen=True)
class _Voice:
    probs: np.ndarray    # (sentences, EN labels), each sentence's own span
    diary: np.ndarray    # the whole diary
    neutral: np.ndarray  # (sentences,) probability that the voice of each span is neutral
    diary_neutral: float
    prosody: list[Prosody]
    diary_prosody: Prosody
    baseline: NeutralBaseline
    heard: bool          # any voiced audio at all; without it ``diary`` is uniform


@dataclass
class Heard:
    """One recording after decode, STT and sentence split: what the emotion stages need."""

    audio: Audio
    speech: list[tuple[float, float]]
    language: str
    transcript: str
    transcript_source: str
    sents: list
    warnings: list[str]
    timer: _Timer
    recorded_at: datetime | None = None


class Pipeline:
    """The loaded models of one configuration; ``analyze`` may be called any number of times."""

    def __init__(self, config: Config | None = None):
        self.config = config or default_config()
        self.stt = load_engine(self.config.stt)
        self.text_model = load_text_model(self.config.text, self.config.labels.ko)
        self.audio_model = voice_model.load_audio_model(self.config)
        sentence_stage.kiwi()  # the Korean analyser both the splitter and the text model use

    def under(self, config: Config) -> Pipeline:
        """These loaded models under ``config``, which may differ only in settings that change no report."""
        if config.fingerprint() != self.config.fingerprint():
            raise ValueError("a pipeline's models serve only configurations of the same fingerprint")
        twin = copy.copy(self)
        twin.config = config
        return twin

    def analyze(
        self,
        source: str | Path | Audio,
        *,
        transcript: str | None = None,
        baseline: str | NeutralBaseline | None = None,
        recorded_at: datetime | None = None,
    ) -> DiaryReport:
        """Analyse one recording (a path, or an already decoded :class:`~fusion.audio.Audio`).

        ``transcript`` skips speech-to-text: its sentences are spread over the
        speech in the recording. ``baseline`` is ``auto`` (by pitch), ``male``, ``female``,
        the path of a personal baseline JSON (``fusion baseline``) or a built ``NeutralBaseline``;
        default from config. ``recorded_at`` defaults to a path's modification time.
        """
        heard = self.hear(source, transcript=transcript, recorded_at=recorded_at)
        return self.analyze_batch([heard], baseline=baseline)[0]

    def hear(self, source: str | Path | Audio, *, transcript: str | None = None,
             recorded_at: datetime | None = None) -> Heard:
        """The stages before the models of emotion: decode → stt → sentences (or the given transcript split).

        ``recorded_at`` defaults to the modification time of a path (none for decoded audio)."""
        cfg = self.config
        timer = _Timer()
        with timer.stage("decode"):
            audio = source if isinstance(source, Audio) else load_audio(
                source, max_duration_s=cfg.audio_input.max_duration_s)
            warnings = audio_warnings(audio, cfg.audio_input)
            speech = voiced_spans(audio, cfg.audio_input)
        heard = None
        if transcript is not None:
            language = cfg.stt.language
            with timer.stage("sentences"):
                sents = sentence_stage.sentences_from_text(transcript, speech, audio.duration, cfg.sentences)
        else:
            with timer.stage("stt"):
                heard = transcribe_long(self.stt, audio.samples, speech, cfg.stt.max_chunk_s)
            language = heard.language
            transcript = heard.text
            with timer.stage("sentences"):
                sents = sentence_stage.sentences_from_transcript(heard, cfg.sentences, speech)
        if not speech:
            warnings.append("no speech found: the report holds neither words nor a voice emotion")
        elif not sents:
            warnings.append("no words were recognised: the report rests on the voice alone")
        if recorded_at is None and not isinstance(source, Audio):
            recorded_at = file_time(source)
        return Heard(audio, speech, language, transcript, "given" if heard is None else "stt", sents, warnings, timer,
                     recorded_at)

    def analyze_batch(self, heard: list[Heard], *, baseline: str | NeutralBaseline | None = None) -> list[DiaryReport]:
        """Finish several heard recordings: one text-model call for all their sentences, then voice and combine.

        The text stage's time is shared among the recordings in proportion to their sentences.
        """
        t0 = time.perf_counter()
        read = read_words(self.text_model, [[s.text for s in h.sents] for h in heard], self.config.text)
        share = (time.perf_counter() - t0) / max(sum(len(h.sents) for h in heard), 1)
        reports = []
        for h, text in zip(heard, read):
            h.timer.stages["text"] = round(share * len(h.sents), 4)
            with h.timer.stage("audio"):
                voice = self._voice(h.audio, [(s.start, s.end) for s in h.sents], h.speech, baseline)
            with h.timer.stage("combine"):
                report = self._assemble(h.audio, h.language, h.transcript, h.transcript_source, h.sents, text, voice,
                                        h.warnings)
            reports.append(report.model_copy(update={"timings": h.timer.stages, "recorded_at": h.recorded_at}))
        return reports

    def _voice(self, audio: Audio, spans: list[tuple[float, float]], speech,
               baseline: str | NeutralBaseline | None) -> _Voice:
        """Voice emotion and prosody of the whole diary and of each span, against the neutral baseline."""
        cfg = self.config
        frames = prosody_stage.track(audio.samples, audio.sample_rate)
        measured = frames.measure()
        base = prosody_stage.resolve_baseline(baseline or cfg.audio.baseline, cfg, pitch_hz=measured.pitch_hz)
        scores = self.audio_model.predict(audio.samples, spans, speech, base)
        uniform = np.full(len(cfg.labels.en), 1.0 / len(cfg.labels.en))
        return _Voice(
            probs=scores.spans,
            diary=scores.diary if speech else uniform,
            neutral=scores.span_neutral,
            diary_neutral=scores.diary_neutral if speech else 0.0,
            prosody=[frames.measure(span).for_report(base) for span in spans],
            diary_prosody=measured.for_report(base),
            baseline=base,
            heard=bool(speech),
        )

    def _assemble(self, audio: Audio, language: str, transcript: str, transcript_source: str, sents,
                  text: Words, voice: _Voice, warnings: list[str]) -> DiaryReport:
        cfg = self.config
        ko, en = cfg.labels.ko, cfg.labels.en
        percent, mean = diary_text_scores(text.probs)
        words = combine.diary_words(text, cfg)
        fused = combine.fuse(mean if sents else None, voice.diary, cfg)
        heard = quality_stage.assess(audio.samples, cfg.quality)
        observations = [
            combine.Observation(text.probs[i], voice.probs[i], voice.prosody[i], sentence=i, words_va=words.points[i],
                                voice_neutral=float(voice.neutral[i]), snr_db=heard.snr_db)
            for i in range(len(sents))
        ]
        diary = combine.Observation(mean, voice.diary, voice.diary_prosody, words_va=words.point,
                                    voice_neutral=voice.diary_neutral, snr_db=heard.snr_db)
        alerts, withheld = combine.heard_well(combine.mismatch_alerts(diary, observations, cfg) if sents else [],
                                              heard.problems if voice.heard else ())
        sentence_reports = [
            SentenceReport(
                index=i, text=s.text, start=round(s.start, 3), end=round(s.end, 3), timing=s.source,
                text_probs=_dist(ko, text.probs[i]), text_top=_top(ko, text.probs[i]),
                voice_probs=_dist(en, voice.probs[i]), voice_top=_top(en, voice.probs[i]),
                voice_neutral_prob=round(float(voice.neutral[i]), 4),
                neutral=bool(text.marked[i]),
                neutral_prob=round(float(text.neutral[i]), 4),
                words_va=words.points[i],
                voice_va=observations[i].voice(cfg),
                prosody=voice.prosody[i],
            )
            for i, s in enumerate(sents)
        ]
        return DiaryReport(
            source=audio.source,
            duration_s=round(audio.duration, 3),
            language=language,
            models=Models(stt_engine=self.stt.name, stt_model=self.stt.model_id,
                          text_model=self.text_model.model_id, audio_model=self.audio_model.model_id),
            transcript=transcript,
            transcript_source=transcript_source,
            sentences=sentence_reports,
            text=TextSummary(percent=_dist(ko, percent, 2), mean_probs=_dist(ko, mean),
                             top=_top(ko, mean) if sents else None, polarity=words.polarity,
                             neutral_percent=round(100.0 * float(text.marked.mean()) if sents else 0.0, 2)),
            voice=VoiceSummary(probs=_dist(en, voice.diary), top=_top(en, voice.diary) if voice.heard else None,
                               neutral_prob=round(voice.diary_neutral, 4), baseline=voice.baseline.name,
                               baseline_diaries=voice.baseline.diaries, baseline_since=voice.baseline.since,
                               prosody=voice.diary_prosody),
            fused=FusedSummary(en=_dist(en, fused.en), ko=_dist(ko, fused.ko),
                               top_en=_top(en, fused.en), top_ko=_top(ko, fused.ko)),
            words_va=words.point,
            voice_va=diary.voice(cfg),
            alerts=alerts,
            verdict=quality_stage.too_poor(heard) if withheld else
            combine.verdict(words, diary.voice(cfg) if voice.heard else None, alerts, cfg),
            timings={},
            warnings=warnings + [f"voice hard to hear: {p}" for p in heard.problems if voice.heard],
            quality=RecordingQuality(snr_db=heard.snr_db, reverb_s=heard.decay_s, bandwidth_hz=heard.bandwidth_hz,
                                     problems=list(heard.problems), withheld=withheld),
        )


_PIPELINES: dict[str, Pipeline] = {}


def load_pipeline(config: Config | None = None) -> Pipeline:
    """The process-wide pipeline of a configuration (default: the default one).

    Models load once per :meth:`Config.fingerprint`, so settings that change no report (a server
    token, a thread count, a duration limit) reuse them under the caller's config.
    """
    config = config or default_config()
    key = config.fingerprint()
    if key not in _PIPELINES:
        _PIPELINES[key] = Pipeline(config)
    loaded = _PIPELINES[key]
    return loaded if loaded.config == config else loaded.under(config)


def analyze(
    source: str | Path | Audio,
    *,
    transcript: str | None = None,
    baseline: str | NeutralBaseline | None = None,
    recorded_at: datetime | None = None,
    config: Config | None = None,
) -> DiaryReport:
    """Analyse one diary recording with models loaded once per process (arguments as :meth:`Pipeline.analyze`).

    >>> report = analyze("diary.wav", transcript="오늘 정말 즐거웠어. 친구를 만났거든.")  # doctest: +SKIP
    >>> [a.kind for a in report.alerts]                                              # doctest: +SKIP
    """
    return load_pipeline(config).analyze(source, transcript=transcript, baseline=baseline, recorded_at=recorded_at)
