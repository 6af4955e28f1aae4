"""Voice emotion from the middle of the embedded Whisper encoder: pooled hidden states → linear head.

Whisper's encoder was trained to hear speech in any voice, so its hidden states are a
strong speaker-independent description of *how* something is said; its last layers mostly
carry *what* is said, the middle ones more of the voice (measured: fusion/models/audio/
whisper-encoder-lr/MODEL_CARD.md). The encoder runs on the diary's voiced audio, cut into
pieces of at most ``max_piece_s`` (each its own log-mel, as Whisper sees a clip); the frames
of the chosen layers (50 a second) are mean-pooled over each span and over the whole diary,
standardised and fed to a multinomial logistic head (``model.safetensors``). Nothing but
the head is stored with the model: the encoder weights are the ones speech-to-text ships.
The model owns its window: ``max_piece_s`` and ``min_span_s`` (how wide a sentence is heard)
are read from its ``config.json``, written there with the head it was trained with.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusion.audio import SAMPLE_RATE
from fusion.errors import ModelError

ARCHITECTURE = "whisper-encoder-lr"
FRAME_S = 0.02        # one encoder frame (after the stride-2 convolution)
MIN_PIECE_S = 0.1     # shorter voiced stretches hold too few frames to say anything
N_FFT, HOP = 400, 160  # Whisper's STFT at 16 kHz
# The window a head is trained with, written into its config.json by ``save``: voiced audio encoded in pieces of at
# most max_piece_s seconds, and a sentence heard with at least min_span_s seconds of speech around it.
TRAINED_WINDOW = {"max_piece_s": 10.0, "min_span_s": 1.0}

Span = tuple[float, float]


class _Block(nn.Module):
    """Whisper's residual block, encoder side: pre-norm self-attention, then a pre-norm 4x GELU MLP."""

    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.attn = nn.ModuleDict({"query": nn.Linear(n_state, n_state), "key": nn.Linear(n_state, n_state, bias=False),
                                   "value": nn.Linear(n_state, n_state), "out": nn.Linear(n_state, n_state)})
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.attn_ln(x)
        q, k, v = (self.attn[name](h).unflatten(-1, (self.n_head, -1)).transpose(1, 2)
                   for name in ("query", "key", "value"))
        x = x + self.attn["out"](F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))
        return x + self.mlp(self.mlp_ln(x))


class LayerEncoder(nn.Module):
    """The first ``n_blocks`` blocks of Whisper's audio encoder, on inputs of any length up to 30 s.

    Defined here, module for module as openai-whisper's ``AudioEncoder`` (so its state-dict keys
    load as they are), so the voice model needs neither that package nor any code from a checkpoint.
    """

    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_blocks: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.blocks = nn.ModuleList(_Block(n_state, n_head) for _ in range(n_blocks))
        self.register_buffer("positional_embedding", torch.zeros(n_ctx, n_state))

    def forward(self, mel: torch.Tensor, layers: tuple[int, ...]) -> torch.Tensor:
        """(frames, len(layers) · n_state): the hidden states after block ``k`` for each k in ``layers``
        (0 = the stem)."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel[None])))).permute(0, 2, 1)
        x = x + self.positional_embedding[: x.shape[1]]
        out = [x] if 0 in layers else []
        for k, block in enumerate(self.blocks, start=1):
            x = block(x)
            if k in layers:
                out.append(x)
        return torch.cat(out, dim=-1)[0]


def log_mel(samples: torch.Tensor, n_mels: int) -> torch.Tensor:
    """Whisper's log-mel input: 25 ms Hann STFT every 10 ms, Slaney mel power, log10, 8 decades, scaled."""
    stft = torch.stft(samples, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    mel = _mel_filters(n_mels) @ stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(mel, min=1e-10).log10()
    return (torch.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0


@lru_cache(maxsize=2)
def _mel_filters(n_mels: int) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels))


@lru_cache(maxsize=2)
def load_encoder(n_blocks: int) -> LayerEncoder:
    """The embedded Whisper base encoder, its first ``n_blocks`` blocks, loaded once per process.

    The weights come from the openai checkpoint converted from the STT model
    (``fusion.model_files``), read with ``weights_only=True`` and memory-mapped:
    only the encoder's tensors are touched.
    """
    from fusion.model_files import openai_checkpoint

    checkpoint = torch.load(openai_checkpoint(), map_location="cpu", weights_only=True, mmap=True)
    d = checkpoint["dims"]
    if not 0 <= n_blocks <= d["n_audio_layer"]:
        raise ModelError(f"the Whisper encoder has {d['n_audio_layer']} blocks; a voice model asked for {n_blocks}")
    encoder = LayerEncoder(d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], n_blocks)
    wanted = encoder.state_dict().keys()
    state = {k.removeprefix("encoder."): v.float() for k, v in checkpoint["model_state_dict"].items()
             if k.startswith("encoder.") and k.removeprefix("encoder.") in wanted}
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


def pieces(speech: list[Span], max_s: float) -> list[Span]:
    """The voiced spans, each cut into equal pieces of at most ``max_s`` seconds; too-short ones dropped."""
    out = []
    for start, end in speech:
        n = max(1, math.ceil((end - start) / max_s))
        step = (end - start) / n
        out += [(start + i * step, start + (i + 1) * step) for i in range(n) if step >= MIN_PIECE_S]
    return out


def widen(span: Span, speech: list[Span], min_s: float, duration: float) -> Span:
    """``span`` grown evenly on both sides until it holds ``min_s`` seconds of speech (or the whole recording)."""
    def voiced(a: float, b: float) -> float:
        return sum(max(0.0, min(b, e) - max(a, s)) for s, e in speech)

    start, end = span
    grow = 0.25
    while voiced(start, end) < min_s and (start > 0 or end < duration):
        start, end = max(0.0, start - grow), min(duration, end + grow)
        grow *= 2
    return start, end


def pooled_features(samples: np.ndarray, targets: list[Span], speech: list[Span], encoder: LayerEncoder,
                    layers: tuple[int, ...], max_piece_s: float) -> np.ndarray:
    """(len(targets), features): mean of the encoder frames of ``layers`` inside each target span.

    The encoder runs once over the voiced pieces; a target's frames are those of the pieces
    whose time falls inside it. A target without frames gets a row of NaN.
    """
    sums, counts = None, np.zeros(len(targets))
    bounds = np.array(targets, dtype=np.float64).reshape(-1, 2)
    for start, end in pieces(speech, max_piece_s):
        y = torch.from_numpy(np.ascontiguousarray(samples[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)], np.float32))
        with torch.inference_mode():
            h = encoder(log_mel(y, encoder.conv1.in_channels), layers).double().numpy()
        if sums is None:
            sums = np.zeros((len(targets), h.shape[1]))
        times = start + (np.arange(len(h)) + 0.5) * FRAME_S
        cum = np.vstack([np.zeros((1, h.shape[1])), np.cumsum(h, axis=0)])
        first = np.searchsorted(times, bounds[:, 0])
        last = np.searchsorted(times, bounds[:, 1])
        hit = last > first
        sums[hit] += cum[last[hit]] - cum[first[hit]]
        counts[hit] += (last - first)[hit]
    if sums is None:
        return np.full((len(targets), 1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


@dataclass(frozen=True)
class WhisperHead:
    """Standardise pooled encoder features, then a linear layer: logits over the model's labels."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray   # (labels, features)
    bias: np.ndarray

    def probs(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale @ self.weight.T + self.bias
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k), np.float32))
                for k in ("mean", "scale", "weight", "bias")}


class WhisperVoice:
    """The ``whisper-encoder-lr`` architecture: scores spans and the diary over the model's own labels."""

    def __init__(self, head: WhisperHead, settings: dict):
        self.head = head
        self.layers = tuple(int(k) for k in settings["layers"])
        self.max_piece_s = float(settings["max_piece_s"])
        self.min_span_s = float(settings["min_span_s"])
        self.encoder = load_encoder(max(self.layers))
        if head.weight.shape[1] != len(self.layers) * self.encoder.conv1.out_channels:
            raise ModelError(f"head of {head.weight.shape[1]} features does not fit layers {self.layers}")

    def score(
        self, samples: np.ndarray, spans: list[Span], speech: list[Span], baseline
    ) -> tuple[np.ndarray, np.ndarray]:
        """(spans × labels, labels): each span widened to ``min_span_s`` of speech; the diary is all of it.

        The baseline is not used: this model is speaker-independent without one (the
        baseline still places the prosody the alerts read).
        """
        duration = len(samples) / SAMPLE_RATE
        targets = [widen(s, speech, self.min_span_s, duration) for s in spans] + [(0.0, duration)]
        x = pooled_features(samples, targets, speech, self.encoder, self.layers, self.max_piece_s)
        n_labels = len(self.head.bias)
        if not np.isfinite(x).all(axis=1)[-1]:  # no speech at all: nothing to say
            uniform = np.full(n_labels, 1.0 / n_labels)
            return np.tile(uniform, (len(spans), 1)), uniform
        probs = np.full((len(targets), n_labels), np.nan)
        ok = np.isfinite(x).all(axis=1)
        probs[ok] = self.head.probs(x[ok])
        probs[~ok] = probs[-1]
        return probs[:-1], probs[-1]


def read_head(directory: Path) -> WhisperHead:
    """The head in ``directory/model.safetensors`` (safetensors: tensors only, nothing executed)."""
    from safetensors.numpy import load_file

    weights = directory / "model.safetensors"
    try:
        t = load_file(weights)
        return WhisperHead(*(t[k].astype(np.float64) for k in ("mean", "scale", "weight", "bias")))
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{weights}: not a {ARCHITECTURE} head ({exc})") from exc


def load(directory: Path, settings: dict) -> WhisperVoice:
    """The head of ``directory`` with the encoder layers and the window named by its config.json ``settings``."""
    missing = [key for key in ("layers", *TRAINED_WINDOW) if key not in settings]
    if missing:
        raise ModelError(f"{directory / 'config.json'}: no {', '.join(missing)} (the layers and window the head was "
                         "trained with)")
    return WhisperVoice(read_head(directory), settings)


def save(directory: Path, head: WhisperHead, config: dict) -> None:
    """Write the head (safetensors) and ``config.json`` (architecture, the window it is heard with, labels, layers,
    recipe, figures)."""
    from safetensors.torch import save

    from fusion.files import atomic_write

    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "model.safetensors", save(head.tensors()))
    settings = {"architecture": ARCHITECTURE, **TRAINED_WINDOW, **config}
    atomic_write(directory / "config.json", json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
