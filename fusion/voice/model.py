"""Voice emotion stage: decoded audio, time spans and a neutral baseline in; emotion per span and for the diary out.

A voice model is a directory whose ``config.json`` names its architecture; the name is
looked up in ``ARCHITECTURES``, a fixed table of networks defined in this package (no code
a model file names is ever imported). Two architectures:

- ``whisper-encoder-lr`` (the embedded default): middle layers of the embedded Whisper
  encoder, pooled, a linear head with a NEUTRAL class (``fusion.voice.whisper``);
- ``cnn-bilstm-mfcc``: the seed's MFCC-delta CNN-BiLSTM, which also loads the original
  ``pytorch_model.pth`` with ``weights_only=True`` (``fusion.voice.cnn``).

Whatever the architecture, :class:`VoiceScores` carries the config's six EN emotion labels
(renormalised) and, apart, the probability that the voice is neutral.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from fusion.config import MODELS_DIR, Config, default_config
from fusion.errors import ModelError
from fusion.voice import cnn as voice_cnn
from fusion.voice import whisper as voice_whisper
from fusion.voice.prosody import NeutralBaseline

EMBEDDED_ROOT = MODELS_DIR / "audio"

Span = tuple[float, float]


@dataclass(frozen=True)
class VoiceScores:
    """What the voice says over each span and over the whole diary."""

    spans: np.ndarray          # (n_spans, len(labels)): emotion distribution of each span, rows sum to 1
    diary: np.ndarray          # (len(labels),)
    span_neutral: np.ndarray   # (n_spans,): probability that the voice is neutral (0 for a model without the class)
    diary_neutral: float


class VoiceEmotionModel(Protocol):
    """A loaded voice model: its labels (the config's EN order), an id for the report, its architecture, ``predict``."""

    labels: tuple[str, ...]
    model_id: str
    architecture: str

    def predict(self, samples: np.ndarray, spans: list[Span], speech: list[Span],
                baseline: NeutralBaseline) -> VoiceScores: ...


class Scorer(Protocol):
    """An architecture: scores spans and the diary over the network's own output labels."""

    def score(self, samples: np.ndarray, spans: list[Span], speech: list[Span],
              baseline: NeutralBaseline) -> tuple[np.ndarray, np.ndarray]: ...


class LabelledVoiceModel:
    """An architecture's scorer whose output columns are mapped onto the config's labels and its neutral label."""

    def __init__(self, scorer: Scorer, model_labels: list[str], labels: tuple[str, ...], neutral_label: str,
                 model_id: str, architecture: str):
        missing = [lab for lab in labels if lab not in model_labels]
        if missing:
            raise ModelError(f"audio model {model_id} lacks labels {missing}; it has {model_labels}")
        self.scorer = scorer
        self.labels = tuple(labels)
        self.model_id = model_id
        self.architecture = architecture
        self._order = np.array([model_labels.index(lab) for lab in labels])
        self._neutral = model_labels.index(neutral_label) if neutral_label in model_labels else None

    def predict(self, samples: np.ndarray, spans: list[Span], speech: list[Span],
                baseline: NeutralBaseline) -> VoiceScores:
        span_p, diary_p = self.scorer.score(samples, spans, speech, baseline)
        diary_p = np.asarray(diary_p, np.float64)
        spans_e, spans_n = split_neutral(np.asarray(span_p, np.float64).reshape(len(spans), len(diary_p)),
                                         self._order, self._neutral)
        diary_e, diary_n = split_neutral(np.asarray(diary_p, np.float64)[None], self._order, self._neutral)
        return VoiceScores(spans_e.astype(np.float32), diary_e[0].astype(np.float32), spans_n, float(diary_n[0]))


def split_neutral(p: np.ndarray, order: np.ndarray | list[int], neutral: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a model's probabilities ``p`` as (the emotions at columns ``order``, renormalised; the probability
    at column ``neutral``, 0 without one); other columns are dropped."""
    neutral_p = p[:, neutral] if neutral is not None else np.zeros(len(p))
    emotions = p[:, order]
    total = emotions.sum(axis=1, keepdims=True)
    return np.divide(emotions, total, out=np.full_like(emotions, 1.0 / emotions.shape[1]), where=total > 0), neutral_p


def _load_cnn(directory: Path, settings: dict, cfg: Config) -> Scorer:
    return voice_cnn.load(_cnn_weights(directory), len(read_labels(directory)), str(directory),
                          cfg.audio.n_mfcc, cfg.audio.frames)


def _load_whisper(directory: Path, settings: dict, cfg: Config) -> Scorer:
    return voice_whisper.load(directory, settings)


ARCHITECTURES: dict[str, Callable[[Path, dict, Config], Scorer]] = {
    voice_whisper.ARCHITECTURE: _load_whisper,
    voice_cnn.ARCHITECTURE: _load_cnn,
}
CNN_WEIGHTS = ("model.safetensors", "pytorch_model.pth", "model.pt", "model.pth")


def read_labels(directory: Path) -> list[str]:
    """The output labels: ``labels.json`` (a list, id→label or label→id dict), else ``config.json``'s ``labels``."""
    path = directory / "labels.json"
    if not path.is_file():
        path = directory / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the model's labels ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("labels"), (list, dict)):
        data = data["labels"]
    if isinstance(data, list):
        return [str(x) for x in data]
    if isinstance(data, dict) and data and all(isinstance(v, int) for v in data.values()):
        return [k for k, _ in sorted(data.items(), key=lambda kv: kv[1])]
    if isinstance(data, dict) and data and all(str(k).isdigit() for k in data):
        return [str(data[k]) for k in sorted(data, key=int)]
    raise ModelError(f"{path}: labels must be a list or an id→label dict")


def _cnn_weights(directory: Path) -> Path:
    for name in CNN_WEIGHTS:
        if (directory / name).is_file():
            return directory / name
    raise ModelError(f"{directory}: none of {' / '.join(CNN_WEIGHTS)} in this directory")


def architecture_of(directory: Path) -> tuple[str, dict]:
    """(architecture name, config.json contents): a directory without config.json is the seed's CNN-BiLSTM."""
    path = directory / "config.json"
    if not path.is_file():
        return voice_cnn.ARCHITECTURE, {}
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not readable JSON ({exc})") from exc
    name = settings.get("architecture", voice_cnn.ARCHITECTURE)
    if name not in ARCHITECTURES:
        raise ModelError(f"{path}: unknown architecture {name!r}; this version knows {sorted(ARCHITECTURES)}")
    return name, settings


def _locate(spec: str, cfg: Config) -> tuple[Path, str]:
    """(model directory, model id) for ``embedded:default``, a local directory or ``.pth`` file, or a hub id."""
    if spec in ("embedded", "embedded:default"):
        if cfg.audio.architecture not in ARCHITECTURES:
            raise ModelError(f"[audio] architecture {cfg.audio.architecture!r} is none of {sorted(ARCHITECTURES)}")
        return EMBEDDED_ROOT / cfg.audio.architecture, f"embedded:{cfg.audio.architecture}"
    path = Path(spec).expanduser()
    if path.is_dir():
        return path, str(path)
    if path.is_file():
        if path.name not in CNN_WEIGHTS:
            raise ModelError(f"{path}: a single weights file must be one of {' / '.join(CNN_WEIGHTS)} (the CNN-BiLSTM)")
        return path.parent, str(path)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        try:
            from huggingface_hub import hf_hub_download

            weights = hf_hub_download(spec, "pytorch_model.pth")
            hf_hub_download(spec, "labels.json")
        except Exception as exc:  # network, auth, missing repo: all reported the same way
            raise ModelError(f"cannot download audio model {spec!r} from the Hugging Face hub: {exc}") from exc
        return Path(weights).parent, spec
    raise ModelError(f"audio model {spec!r} is neither a directory, a .pth file nor a hub id")


def load_audio_model_from(spec: str, cfg: Config) -> LabelledVoiceModel:
    """Load without caching (tests, tools); ``load_audio_model`` is the cached entry point."""
    directory, model_id = _locate(spec, cfg)
    if not directory.is_dir():
        raise ModelError(f"{directory}: audio model directory not found")
    name, settings = architecture_of(directory)
    scorer = ARCHITECTURES[name](directory, settings, cfg)
    return LabelledVoiceModel(scorer, read_labels(directory), cfg.labels.en, cfg.audio.neutral_label, model_id, name)


_LOADED: dict[str, VoiceEmotionModel] = {}


def load_audio_model(cfg: Config | None = None) -> VoiceEmotionModel:
    """The process-wide voice model named by ``cfg.audio`` (and the labels it maps onto), loaded once."""
    cfg = cfg or default_config()
    key = cfg.audio.model_dump_json(exclude={"baseline", "baselines"}) + "|" + ",".join(cfg.labels.en)
    if key not in _LOADED:
        _LOADED[key] = load_audio_model_from(cfg.audio.model, cfg)
    return _LOADED[key]
