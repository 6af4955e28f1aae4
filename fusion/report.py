"""The DiaryReport: what one recording produced, as versioned, validated JSON.

``SCHEMA_VERSION`` changes whenever a field is added, renamed, removed or changes
meaning; a report of an older version still validates (every field added since has a
default). ``DiaryReport.model_json_schema()`` gives the JSON Schema.

1.1: ``recorded_at``; the voice's baseline says how many diaries built it and since when
(``personal-auto``); ``trend_alerts`` (a person's recent diaries against their own history).
1.2: ``text.polarity`` (what the words say as a whole) and ``verdict`` (how words and voice stand); the words'
valence/arousal follow the calibrated P(pleasant) (``fusion.combine.diary_words``).
1.3: ``quality`` (how well the recording lets a voice be heard: SNR, reverberation, bandwidth; ``fusion.quality``)
and the voice-based alerts it withheld.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from fusion.alerts import DRIFT_KIND, MISMATCH_WORDS, SEVERITIES
from fusion.files import atomic_write, json_text

SCHEMA_VERSION = "1.3"

Severity = Literal[SEVERITIES]
# What a diary's words say as a whole (fusion.combine.diary_words).
Polarity = Literal["positive", "negative", "mixed", "plain"]
POLARITIES: tuple[str, ...] = get_args(Polarity)


def _known_kind(kind: str) -> str:
    if kind not in MISMATCH_WORDS:
        raise ValueError(f"unknown alert kind {kind!r}; fusion.alerts.MISMATCH_WORDS has {list(MISMATCH_WORDS)}")
    return kind


# Read when a value is checked or the schema is built, so a kind added to MISMATCH_WORDS is known at once.
AlertKind = Annotated[str, AfterValidator(_known_kind),
                      Field(json_schema_extra=lambda schema: schema.update(enum=list(MISMATCH_WORDS)))]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValenceArousal(_Model):
    """A point on the circumplex: valence (unpleasant -1 … pleasant 1), arousal (calm -1 … excited 1)."""

    valence: float
    arousal: float


class Prosody(_Model):
    """Plain voice measurements over a stretch of audio, and the same against the neutral baseline."""

    pitch_hz: float | None = Field(description="median F0 of voiced frames")
    energy_db: float | None = Field(description="RMS energy of the active frames, dBFS")
    speaking_rate: float | None = Field(description="voiced segments (roughly syllables) per second of speech")
    pitch_semitones: float | None = Field(None, description="pitch against the baseline's, semitones")
    energy_db_delta: float | None = Field(None, description="energy against the baseline's, dB")
    rate_ratio: float | None = Field(None, description="speaking rate over the baseline's")


class AlertEvidence(_Model):
    """Why an alert fired for one sentence (``sentence`` is its index) or the whole diary (None)."""

    sentence: int | None
    words: dict[str, float]
    voice: dict[str, float]
    words_va: ValenceArousal
    voice_va: ValenceArousal
    voice_neutral: float = Field(0.0, description="probability that the voice is neutral")
    prosody: Prosody | None = None


class Alert(_Model):
    """Words and voice disagree in a way worth a person's attention."""

    kind: AlertKind
    severity: Severity
    score: float = Field(description="depressed-voice score, or the valence / arousal gap between words and voice")
    diary_level: bool = Field(description="the diary as a whole triggers it, not only single sentences")
    sentences: list[int]
    evidence: list[AlertEvidence]


NEUTRAL_VOICE = "neutral"


def voice_label(probs: dict[str, float], top: str, neutral: float) -> str:
    """``neutral`` when a neutral voice is likelier than the top emotion (over all seven labels), else the top."""
    return NEUTRAL_VOICE if neutral > (1.0 - neutral) * probs[top] else top


class SentenceReport(_Model):
    index: int
    text: str
    start: float
    end: float
    timing: Literal["stt", "transcript"] = Field(description="from word timestamps, or spread over the speech")
    text_probs: dict[str, float]
    text_top: str
    neutral: bool = Field(False, description="the words carry no emotion (neutral_prob ≥ [text] neutral_threshold); "
                                             "they then sit at the neutral point and drive no words-vs-voice alert "
                                             "of positive or negative words")
    neutral_prob: float = 0.0
    voice_probs: dict[str, float] = Field(description="the voice's emotions over this span (neutral share taken out)")
    voice_top: str
    voice_neutral_prob: float = Field(0.0, description="probability that the voice of this span is neutral; "
                                                       "voice_va is pulled to the neutral point by it")
    words_va: ValenceArousal
    voice_va: ValenceArousal
    prosody: Prosody | None = Field(description="the voice over this sentence's span against the baseline")

    def voice_label(self) -> str:
        return voice_label(self.voice_probs, self.voice_top, self.voice_neutral_prob)


class TextSummary(_Model):
    percent: dict[str, float] = Field(description="share of sentences per top label, percent (the original's score)")
    mean_probs: dict[str, float]
    top: str | None
    neutral_percent: float = Field(0.0, description="share of sentences marked neutral, percent")
    polarity: Polarity = Field(
        "plain", description="what the words say as a whole: positive or negative at [alerts] "
                             "positive_words_valence / negative_words_valence of words_va, plain when no sentence "
                             "carries an emotion, mixed in between")


class VoiceSummary(_Model):
    probs: dict[str, float] = Field(description="the voice's emotions (neutral share taken out); uniform when the "
                                                "recording holds no voiced audio")
    top: str | None
    neutral_prob: float = Field(0.0, description="probability that the voice is neutral")
    baseline: str = Field(description="the neutral baseline the voice is measured against: male, female, a personal "
                                      "baseline's name, or personal-auto (built from the person's own diaries)")
    baseline_diaries: int | None = Field(None, description="personal-auto: how many diaries built the baseline")
    baseline_since: datetime | None = Field(None, description="personal-auto: when the earliest of them was recorded")
    prosody: Prosody | None

    def label(self) -> str | None:
        """What the voice of the whole diary sounds like (None without a voice)."""
        return None if self.top is None else voice_label(self.probs, self.top, self.neutral_prob)


class FusedSummary(_Model):
    en: dict[str, float]
    ko: dict[str, float]
    top_en: str
    top_ko: str


class TrendSignal(_Model):
    """One measure of the voice over the recent diaries against the person's usual diaries."""

    recent: float = Field(description="median over the recent diaries")
    usual: float = Field(description="median over the earlier diaries")
    z: float = Field(description="robust z-score of recent against usual (median / 1.4826 MAD, floored)")


class TrendAlert(_Model):
    """The voice of a person's recent diaries sits lower than their own usual: never raised from one diary."""

    kind: Literal[DRIFT_KIND] = DRIFT_KIND
    severity: Severity
    score: float = Field(description="mean of the negated z-scores of the signals")
    window_days: float
    recent_diaries: int
    usual_diaries: int
    since: datetime = Field(description="the first day of the recent window")
    signals: dict[str, TrendSignal] = Field(description="those of fusion.alerts.TREND_SIGNALS measured in enough "
                                                        "diaries")


class RecordingQuality(_Model):
    """How well the recording lets a voice be heard (``fusion.quality``)."""

    snr_db: float = Field(description="estimated speech level over the background noise, dB")
    reverb_s: float | None = Field(description="estimated reverberation time, s (none where noise hides it)")
    bandwidth_hz: float = Field(description="highest frequency the recording carries (about 4000 after a "
                                            "phone-call or AMR codec)")
    problems: list[str] = Field([], description="each way the recording is too poor to judge a voice, in words")
    withheld: list[str] = Field([], description="voice-based alert kinds that would have fired but were not raised "
                                                "because of those problems")

    def words(self) -> str:
        """One line on how well the voice could be heard, the same in every rendering of the report."""
        reverb = "echo not measurable under the noise" if self.reverb_s is None else f"echo ~{self.reverb_s:.2f} s"
        heard = "too poor to judge the voice" if self.problems else "the voice can be judged"
        return (f"Recording: speech ~{self.snr_db:.0f} dB above the background, {reverb}, sound up to "
                f"{self.bandwidth_hz / 1000:.1f} kHz: {heard}.")


class Models(_Model):
    stt_engine: str
    stt_model: str
    text_model: str
    audio_model: str


class DiaryReport(_Model):
    schema_version: str = SCHEMA_VERSION
    source: str
    recorded_at: datetime | None = Field(None, description="when the diary was recorded (the file's time, a date "
                                                           "given with it, or the upload time)")
    duration_s: float
    language: str
    models: Models
    transcript: str
    transcript_source: Literal["stt", "given"]
    sentences: list[SentenceReport]
    text: TextSummary
    voice: VoiceSummary
    fused: FusedSummary
    words_va: ValenceArousal
    voice_va: ValenceArousal
    alerts: list[Alert] = Field(description="where words and voice disagree: a mismatch worth a look, never a "
                                            "diagnosis")
    verdict: str = Field("", description="one sentence on how words and voice stand: they agree, the alerts say "
                                         "where they disagree, or how far apart they sit below the alert thresholds")
    timings: dict[str, float] = Field(description="wall seconds per stage")
    warnings: list[str]
    quality: RecordingQuality | None = Field(None, description="how well the recording lets a voice be heard")
    trend_alerts: list[TrendAlert] = Field([], description="the person's recent diaries against their own history "
                                                           "(the service, with enough dated diaries)")

    def to_json(self, indent: int | None = 2) -> str:
        return json_text(self.model_dump(mode="json"), indent)

    def save_json(self, path: str | Path) -> None:
        atomic_write(path, self.to_json() + "\n")
