"""One typed configuration object, read from ``configs/default.toml``.

Every label set, matrix, weight, threshold and model id of the pipeline lives in
that file; stages receive the section they need. ``load_config(path)`` reads
another file, ``FUSION_CONFIG`` names one for the whole process. No field has a
default in code: every value is read from the file, so none is written twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fusion import __version__
from fusion.alerts import MISMATCH_WORDS, TREND_SIGNALS
from fusion.errors import ConfigError, InputError
from fusion.files import open_regular
from fusion.report import SCHEMA_VERSION

PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "models"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Labels(_Section):
    ko: tuple[str, ...]
    ko_english: tuple[str, ...]
    en: tuple[str, ...]


class AudioInputConfig(_Section):
    min_duration_s: float
    silence_dbfs: float
    clip_level: float
    clip_fraction: float
    top_db: float
    speech_floor_dbfs: float
    merge_gap_s: float
    max_duration_s: float              # decoding stops past this many seconds (CLI, batch, Python API)


class STTConfig(_Section):
    engine: Literal["faster-whisper", "openai-whisper"]
    model: str
    language: str
    device: str
    compute_type: str
    beam_size: int
    vad_filter: bool
    word_timestamps: bool
    condition_on_previous_text: bool
    temperature: tuple[float, ...]
    no_speech_threshold: float
    logprob_threshold: float
    compression_ratio_threshold: float
    speech_floor_dbfs: float
    cpu_threads: int
    initial_prompt: str                # text Whisper sees as the previous window ("" = none)
    max_chunk_s: float
    batch_size: int                    # faster-whisper: clips decoded side by side; 0 = one window at a time
    clips: Literal["voiced", "silero"]  # batched: where the clips come from (the recording's voiced spans or Silero)
    clip_pad_s: float                  # batched "voiced": a clip reaches this far past its first and last span


class SentenceConfig(_Section):
    method: Literal["kiwi-endings", "kiwi", "regex"]
    regex: str
    min_chars: int
    end_score: float                   # kiwi-endings: LM gain at which a 반말 ending ends an unpunctuated sentence


class TextConfig(_Section):
    backend: Literal["embedded", "hf"]
    model: str
    architecture: Literal["e5-finetune", "ngram-lr"]   # what "embedded:default" means
    max_length: int
    batch_size: int
    # P(neutral) from predict_neutral at or above which a sentence is emotionally neutral
    neutral_threshold: float
    context_weight: float              # share of the neighbouring sentences' log-odds a sentence is read with


class Baseline(_Section):
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pitch_hz: float                    # prosody reference: median F0 of neutral speech
    energy_db: float                   # RMS level of active frames, dBFS
    rate_per_s: float                  # voiced segments per second


class AudioConfig(_Section):
    model: str
    architecture: str                  # what "embedded:default" means: whisper-encoder-lr | cnn-bilstm-mfcc
    neutral_label: str                 # a model output that means "no emotion in the voice"
    n_mfcc: int
    frames: int
    eps: float
    baseline: str
    baselines: dict[str, Baseline]


class FusionConfig(_Section):
    text_weight: float
    audio_weight: float
    eps: float
    ko2en: tuple[tuple[float, ...], ...]
    en2ko: tuple[tuple[float, ...], ...]
    valence_arousal: dict[str, dict[str, tuple[float, float]]]
    neutral_point: tuple[float, float]
    pleasant_shift: float              # log-odds added to P(pleasant labels | emotional words)


class AlertConfig(_Section):
    positive_words_valence: float
    plain_words_emotion: float         # a diary whose sentences carry an emotion less surely on average is plain
    depressed_pitch_weight: float
    depressed_score: float
    depressed_score_sentence: float
    depressed_noise_margin: float      # added to both depressed thresholds at [quality] min_snr_db, none from ...
    depressed_clean_snr_db: float      # ... this estimated SNR up (fusion.combine.noise_margin)
    negative_words_valence: float
    upbeat_voice_valence: float
    upbeat_voice_arousal: float
    calm_words_arousal: float
    calm_words_valence: float
    agitated_voice_arousal: float
    agree_gap: float                   # words and voice within this on valence and arousal "agree" (no alert)
    severity: dict[str, tuple[float, float, float]]   # kind of fusion.alerts.MISMATCH_WORDS → low, medium, high steps

    @model_validator(mode="after")
    def _severity_covers_the_kinds(self) -> AlertConfig:
        missing, unknown = set(MISMATCH_WORDS) - set(self.severity), set(self.severity) - set(MISMATCH_WORDS)
        if missing or unknown:
            raise ValueError(f"[alerts.severity] must give steps for exactly the alert kinds {list(MISMATCH_WORDS)} "
                             f"(fusion.alerts.MISMATCH_WORDS): missing {sorted(missing)}, unknown {sorted(unknown)}")
        return self


class BatchConfig(_Section):
    """``fusion batch`` / ``analyze_many``: how files are scheduled, never what is computed."""

    workers: int                       # local engine: processes, each with its own models
    files_per_chunk: int               # recordings whose sentences share one text-model call
    chunk_audio_s: float               # ... or fewer, once their audio reaches this many seconds
    prefetch: int                      # recordings decoded ahead while the models work
    extensions: tuple[str, ...]
    fsync: bool                        # flush every written line to disk
    malloc_arenas: int                 # glibc malloc arenas per worker (0 = glibc default): bounds RSS
    malloc_mmap_threshold: int         # bytes; larger blocks are mmapped and go back when freed (0 = glibc default)
    ray_actors: int                    # 0: as many as the cluster's CPUs allow
    ray_actor_cpus: float


USER_NAME_MAX = 100  # characters of a service user's name (the database column's size)


def check_user_name(name: str) -> str:
    """``name`` as a service user's name: 1 to ``USER_NAME_MAX`` characters, no surrounding space, no control
    characters (ValueError otherwise); ``fusion serve add-user`` and ``[server.tokens]`` alike."""
    if not name or name != name.strip() or len(name) > USER_NAME_MAX or not name.isprintable():
        raise ValueError(f"a user name is 1 to {USER_NAME_MAX} printable characters without surrounding spaces, "
                         f"not {name[:USER_NAME_MAX]!r}" + ("…" if len(name) > USER_NAME_MAX else ""))
    return name


class ServerConfig(_Section):
    """``fusion serve``: where uploads and the database live, and what an upload may be."""

    host: str                          # `fusion serve` listens here (--host, --port override)
    port: int = Field(ge=0, le=65535)
    database_url: str                  # any SQLAlchemy URL; "" = SQLite file fusion.db in storage_dir
    public_url: str                    # the start of every link the service sends; "" = relative to the API root
    storage_dir: str
    max_upload_bytes: int
    max_duration_s: float
    max_transcript_chars: int
    languages: tuple[str, ...]
    workers: int
    max_attempts: int
    max_queued_per_user: int           # more queued or running analyses of one user → 429
    max_stored_bytes_per_user: int     # an upload taking a user's stored recordings past this → 507
    keep_recordings_days: float        # a finished analysis's recording is deleted after this many days (0: at once)
    max_baseline_files: int            # POST /v1/baseline: at most this many calm recordings (2 at least)
    max_baseline_builds: int = Field(ge=1)   # POST /v1/baseline requests decoding at once (one per user)
    tokens: dict[str, str]

    @field_validator("tokens")
    @classmethod
    def _token_names_are_user_names(cls, tokens: dict[str, str]) -> dict[str, str]:
        for name in tokens:
            check_user_name(name)
        return tokens

    def storage_path(self) -> Path:
        return Path(os.path.expanduser(self.storage_dir)).resolve()

    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.storage_path() / 'fusion.db'}"


class HistoryConfig(_Section):
    """A person's diaries over time (``fusion.history``): the automatic baseline and the drift alert."""

    min_diaries: Annotated[int, Field(ge=2)]  # a user's own baseline is built once this many of their diaries are done
    max_diaries: int                   # ... from at most this many, the most recent
    window_days: float                 # drift: the recent diaries are those of the last this many days
    min_recent: int                    # ... at least this many of them
    min_usual: int                     # ... against at least this many earlier diaries
    max_usual: int                     # ... and at most this many, the latest before the recent ones
    z_floor: dict[str, float]          # per signal: smallest robust spread, so a steady voice's z stays sane
    min_score: float                   # mean of the signals' negated z-scores at or above which the alert fires
    severity: tuple[float, float, float]  # score steps of low, medium, high

    def auto_diaries(self, diaries: list) -> list | None:
        """The diaries (oldest first) a personal-auto baseline rests on: the last ``max_diaries``, once there are
        ``min_diaries``; None before. The service and ``--baseline-mode auto`` of ``fusion eval`` both ask here."""
        recent = diaries[-self.max_diaries:] if self.max_diaries > 0 else []
        return recent if len(recent) >= self.min_diaries else None

    @model_validator(mode="after")
    def _floors_name_the_signals(self) -> HistoryConfig:
        if set(self.z_floor) != set(TREND_SIGNALS):
            raise ValueError(f"[history.z_floor] must give exactly {list(TREND_SIGNALS)}")
        return self


class QualityConfig(_Section):
    """When a recording is too poor to judge a voice (``fusion.quality``): the voice-based alerts then stand down."""

    min_snr_db: float                  # estimated speech over background, dB
    max_decay_s: float                 # estimated reverberation time, s
    min_bandwidth_hz: float            # highest frequency the recording still carries, Hz


class EvalConfig(_Section):
    """``fusion eval``: dataset label words → model labels, and the label that builds personal baselines."""

    audio_labels: dict[str, str]       # lower-case dataset word → audio model label (e.g. fearful → FEAR)
    text_labels: dict[str, str]        # lower-case dataset word → text model label
    neutral_label: str                 # rows that build a speaker's personal baseline
    babble: str                        # --degrade babble<snr>: a labels CSV of other talkers (path, split columns)
    babble_split: str                  # the rows of that CSV the babble is made of


# Settings that schedule, limit or serve analyses but never change a report: left out of Config.fingerprint().
NOT_IN_REPORT = {"batch": True, "server": True, "eval": True, "history": True, "stt": {"cpu_threads"},
                 "audio_input": {"max_duration_s"}}


class Config(_Section):
    labels: Labels
    audio_input: AudioInputConfig
    stt: STTConfig
    sentences: SentenceConfig
    text: TextConfig
    audio: AudioConfig
    fusion: FusionConfig
    alerts: AlertConfig
    batch: BatchConfig
    server: ServerConfig
    history: HistoryConfig
    eval: EvalConfig
    quality: QualityConfig

    @model_validator(mode="after")
    def _shapes_agree(self) -> Config:
        n_ko, n_en = len(self.labels.ko), len(self.labels.en)
        if len(self.fusion.ko2en) != n_en or any(len(r) != n_ko for r in self.fusion.ko2en):
            raise ValueError(f"fusion.ko2en must be {n_en}x{n_ko} (rows EN, columns KO)")
        if len(self.fusion.en2ko) != n_ko or any(len(r) != n_en for r in self.fusion.en2ko):
            raise ValueError(f"fusion.en2ko must be {n_ko}x{n_en} (rows KO, columns EN)")
        for name, labels in (("ko", self.labels.ko), ("en", self.labels.en)):
            if set(self.fusion.valence_arousal.get(name, {})) != set(labels):
                raise ValueError(f"fusion.valence_arousal.{name} must give a point for each of {labels}")
        if self.alerts.depressed_clean_snr_db <= self.quality.min_snr_db:
            raise ValueError("alerts.depressed_clean_snr_db must be above quality.min_snr_db")
        return self

    def fingerprint(self) -> str:
        """16 hex digits naming what a report depends on: the package and report-schema versions and every
        setting but those that never change a report (:data:`NOT_IN_REPORT`).

        It keys the process's loaded pipelines and the resume keys of batch results, so editing a server
        token, a batch or eval setting, a thread count or a duration limit neither reloads the models nor
        re-scores a finished batch.
        """
        settings = self.model_dump(mode="json", exclude=NOT_IN_REPORT)
        payload = json.dumps({"fusion": __version__, "schema": SCHEMA_VERSION, "config": settings}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def with_updates(self, **sections: dict) -> Config:
        """A copy with some fields of some sections replaced, validated again."""
        data = self.model_dump()
        for section, fields in sections.items():
            data[section] = {**data[section], **fields}
        return Config.model_validate(data)


def default_config_path() -> Path:
    """``$FUSION_CONFIG``, else ``configs/default.toml`` of the checkout or of the installed wheel."""
    if env := os.environ.get("FUSION_CONFIG"):
        return Path(env)
    for candidate in (PACKAGE_DIR.parent / "configs", PACKAGE_DIR / "configs"):
        if (candidate / "default.toml").is_file():
            return candidate / "default.toml"
    raise FileNotFoundError("configs/default.toml not found beside the fusion package")


def _problem(error: dict) -> str:
    """One pydantic error as the dotted key of the TOML and what is wrong with it."""
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key {key}"
    if error["type"] == "missing":
        return f"missing key {key}"
    if error["type"] == "value_error":  # a check of this module: its message names the tables
        return f"{key}: {error['msg'].removeprefix('Value error, ')}"
    return f"{key}: {error['msg']} (got {error['input']!r:.60})"


# Settings that became facts in code: an older file that still sets one loads, with a warning saying why it is ignored.
RETIRED = {
    ("audio_input", "sample_rate"): "every recording is decoded at fusion.audio.SAMPLE_RATE, 16 kHz, the rate the "
                                    "models need",
    ("stt", "embedded_sha256"): "the embedded Whisper model's hash is pinned in code, "
                                "fusion.model_files.EMBEDDED_SHA256",
    ("audio", "max_piece_s"): "the voice model's window is its own, in its config.json",
    ("audio", "min_span_s"): "the voice model's window is its own, in its config.json",
}


def _without_retired(data: dict, path: Path) -> dict:
    """``data`` less the :data:`RETIRED` keys it sets, each named in a warning."""
    for (section, key), why in RETIRED.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            data = {**data, section: {k: v for k, v in data[section].items() if k != key}}
            warnings.warn(f"{path}: {section}.{key} is no longer a setting and is ignored ({why}); remove it",
                          stacklevel=3)
    return data


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a TOML configuration file (the default one when ``path`` is None).

    Raises :class:`~fusion.errors.ConfigError` naming the file and each offending key: a file that cannot
    be read or parsed, an unknown or missing key, a value of the wrong type, tables that disagree. A key
    that is no longer a setting (:data:`RETIRED`) is ignored with a warning.
    """
    path = Path(path) if path is not None else default_config_path()
    try:
        with open_regular(path) as fh:
            data = tomllib.load(fh)
    except InputError as exc:
        raise ConfigError(path, f"cannot read the configuration: {exc.problem}") from exc
    except OSError as exc:
        raise ConfigError(path, f"cannot read the configuration ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML ({exc})") from exc
    try:
        return Config.model_validate(_without_retired(data, path))
    except ValidationError as exc:
        raise ConfigError(path, "; ".join(_problem(e) for e in exc.errors())) from exc


@lru_cache(maxsize=1)
def default_config() -> Config:
    """The process-wide default configuration, read once."""
    return load_config()
