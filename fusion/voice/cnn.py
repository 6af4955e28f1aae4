"""The seed's voice model, ``cnn-bilstm-mfcc``: MFCC-delta windows → CNN-BiLSTM → emotion probabilities.

The architecture of the original system (DESIGN.md §2), kept so its ``pytorch_model.pth``
still loads (``weights_only=True``). MFCCs are computed once over the whole recording and
sliced per span; every span is scored by 100-frame windows of its own frames, normalised by
the neutral baseline's MFCC mean/std, all windows batched together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fusion.audio import SAMPLE_RATE
from fusion.errors import ModelError
from fusion.voice.mfcc import HOP_LENGTH, mfcc, pad_or_cut, span_frames, window_starts
from fusion.voice.prosody import NeutralBaseline

ARCHITECTURE = "cnn-bilstm-mfcc"
BATCH_WINDOWS = 512      # windows per forward pass

Span = tuple[float, float]


class AudioEmotionNet(nn.Module):
    """The original CNN-BiLSTM; attribute names match its state dict. Input (B, 13, 100)."""

    def __init__(self, num_labels: int = 6, n_mfcc: int = 13):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mfcc, 64, 5, padding="same")
        self.bn1 = nn.BatchNorm1d(64)
        self.pool1 = nn.MaxPool1d(2, 2)
        self.conv2 = nn.Conv1d(64, 128, 3, padding="same")
        self.bn2 = nn.BatchNorm1d(128)
        self.pool2 = nn.MaxPool1d(2, 2)
        self.bilstm = nn.LSTM(128, 64, bidirectional=True, batch_first=True)
        self.dense1 = nn.Linear(128, 128)
        self.dense2 = nn.Linear(128, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
        _, (h, _) = self.bilstm(x.permute(0, 2, 1))
        x = torch.cat([h[-2], h[-1]], dim=1)
        return self.dense2(torch.relu(self.dense1(x)))


class CnnVoice:
    """Scores spans and the diary with a CNN-BiLSTM, over the network's own output labels."""

    def __init__(self, net: AudioEmotionNet, n_mfcc: int = 13, frames: int = 100, eps: float = 1e-8):
        self.net = net.eval()
        self.n_mfcc, self.frames, self.eps = n_mfcc, frames, eps

    def score(self, samples: np.ndarray, spans: list[Span], speech: list[Span],
              baseline: NeutralBaseline) -> tuple[np.ndarray, np.ndarray]:
        """(spans × labels, labels): MFCCs computed once, each span and the voiced diary scored from them."""
        feats = mfcc(samples, n_mfcc=self.n_mfcc)
        return self.span_probs(feats, spans, baseline), self.diary_probs(feats, speech, baseline)

    def span_probs(self, feats: np.ndarray, spans: list[Span], baseline: NeutralBaseline) -> np.ndarray:
        """(n_spans, n_labels) probabilities, each span scored by windows of its own frames.

        A span shorter than one window is centred in a window of the surrounding audio; a span
        with no frames inside the recording is scored as one all-padding window.
        """
        if not spans:
            return np.zeros((0, self.n_labels), np.float32)
        return self._score(feats, [span_frames(s, len(feats), min_frames=self.frames) for s in spans], baseline)

    def diary_probs(self, feats: np.ndarray, speech: list[Span], baseline: NeutralBaseline) -> np.ndarray:
        """(n_labels,) mean window probability over the voiced spans (the whole recording when there are none)."""
        speech = speech or [(0.0, len(feats) * HOP_LENGTH / SAMPLE_RATE)]
        frame_spans = [span_frames(s, len(feats)) for s in speech]
        weights = np.array([len(window_starts(b - a, self.frames)) for a, b in frame_spans], float)
        return (weights @ self._score(feats, frame_spans, baseline) / weights.sum()).astype(np.float32)

    @property
    def n_labels(self) -> int:
        return self.net.dense2.out_features

    def _probs(self, windows: np.ndarray) -> np.ndarray:
        """Softmax over (N, frames, n_mfcc) normalised windows."""
        out = []
        with torch.inference_mode():
            for a in range(0, len(windows), BATCH_WINDOWS):
                x = torch.from_numpy(np.ascontiguousarray(windows[a:a + BATCH_WINDOWS].transpose(0, 2, 1)))
                out.append(torch.softmax(self.net(x.float()), dim=1).numpy())
        return np.concatenate(out)

    def _score(self, feats: np.ndarray, frame_spans: list[tuple[int, int]], baseline: NeutralBaseline) -> np.ndarray:
        """Mean window probabilities per frame span; windows built lazily, chunk by chunk."""
        frames = self.frames
        owners, starts, ends = [], [], []
        for i, (a, b) in enumerate(frame_spans):
            for s in window_starts(b - a, frames):
                owners.append(i)
                starts.append(a + s)
                ends.append(min(a + s + frames, b))
        sums = np.zeros((len(frame_spans), self.n_labels))
        counts = np.zeros(len(frame_spans))
        for c in range(0, len(owners), BATCH_WINDOWS):
            sl = slice(c, c + BATCH_WINDOWS)
            chunk = np.stack([pad_or_cut(feats[s:e], frames) for s, e in zip(starts[sl], ends[sl])])
            p = self._probs(baseline.normalise(chunk, self.eps).astype(np.float32))
            np.add.at(sums, owners[sl], p)
            np.add.at(counts, owners[sl], 1)
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def load(weights: Path, n_labels: int, source: str, n_mfcc: int = 13, frames: int = 100) -> CnnVoice:
    """A state dict (``.safetensors``, else ``torch.load(weights_only=True)``) into our own network, strict."""
    return CnnVoice(load_net(weights, n_labels, source), n_mfcc, frames)


def load_net(weights: Path, n_labels: int, source: str) -> AudioEmotionNet:
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(weights, device="cpu")
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{weights}: cannot load audio model weights ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = AudioEmotionNet(num_labels=n_labels)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"{source}: weights do not match the CNN-BiLSTM with {n_labels} labels ({exc})") from exc
    return net
