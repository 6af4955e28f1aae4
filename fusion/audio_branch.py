"""Voice emotion stage: MFCC-delta features → CNN-BiLSTM → six emotion probabilities, plus prosody.

Input is 16 kHz mono float32 samples decoded once elsewhere. MFCCs are computed once over the
whole recording (in blocks, so a long diary stays memory-bounded) and sliced per time span.
Every span is scored by 100-frame windows of its own frames, all windows batched together.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import torch
from torch import nn

from fusion.audio import SAMPLE_RATE, audio_from_array, voiced_spans as audio_voiced_spans
from fusion.config import MODELS_DIR, AudioConfig, Config, default_config
from fusion.errors import ModelError

N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
TOP_DB = 80.0
WINDOW_HOP = 50          # frames between window starts inside a long span (50 % overlap)
BATCH_WINDOWS = 512      # windows per forward pass
MFCC_BLOCK_FRAMES = 2048  # frames per STFT block (~65 s of audio, ~35 MB of spectrogram)
EMBEDDED_DIR = MODELS_DIR / "audio"

Span = tuple[float, float]


class BaselineError(ModelError, ValueError):
    """A neutral baseline that cannot be built or read (too few clips, bad JSON)."""


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


# ---------------------------------------------------------------- features

def mfcc(samples: np.ndarray, sr: int = SAMPLE_RATE, n_mfcc: int = 13) -> np.ndarray:
    """``librosa.feature.mfcc(y, sr, n_mfcc).T`` as (frames, n_mfcc), computed in STFT blocks.

    Equal to the one-shot librosa call (same zero centre padding, same global 80 dB floor),
    but a 30-minute recording never holds its linear spectrogram, nor a padded copy of itself:
    only its log-mel blocks (128 values a frame) wait for the global floor.
    """
    y = np.asarray(samples, dtype=np.float32)
    n_frames = 1 + len(y) // HOP_LENGTH
    if n_frames <= MFCC_BLOCK_FRAMES:
        return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc).T
    mel_fb = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    blocks = []
    for a in range(0, n_frames, MFCC_BLOCK_FRAMES):
        seg = _centred_frames(y, a, min(a + MFCC_BLOCK_FRAMES, n_frames))
        power = np.abs(librosa.stft(seg, n_fft=N_FFT, hop_length=HOP_LENGTH, center=False)) ** 2
        blocks.append(librosa.power_to_db(mel_fb @ power, top_db=None))
    floor = max(float(block.max()) for block in blocks) - TOP_DB
    coeffs = [scipy.fft.dct(np.maximum(block, floor), axis=0, type=2, norm="ortho")[:n_mfcc] for block in blocks]
    return np.concatenate(coeffs, axis=1).T.astype(np.float32)


def _centred_frames(y: np.ndarray, a: int, b: int) -> np.ndarray:
    """The samples under frames ``a``..``b - 1`` of a centred STFT, zeros beyond either end of ``y``."""
    lo = a * HOP_LENGTH - N_FFT // 2
    hi = (b - 1) * HOP_LENGTH + N_FFT // 2
    seg = y[max(lo, 0):max(min(hi, len(y)), 0)]
    return np.pad(seg, (max(-lo, 0), max(hi - len(y), 0)))


def pad_or_cut(seq: np.ndarray, frames: int = 100) -> np.ndarray:
    """Zero-pad or cut a (frames, n_mfcc) sequence to exactly ``frames`` rows, as the original."""
    if len(seq) >= frames:
        return seq[:frames]
    return np.pad(seq, ((0, frames - len(seq)), (0, 0)))


def span_frames(span: Span, n_frames: int, sr: int = SAMPLE_RATE, min_frames: int = 0) -> tuple[int, int]:
    """MFCC frame range [first, last) covering a (start_s, end_s) span, clipped to the recording.

    A span shorter than ``min_frames`` grows evenly on both sides (as far as the recording
    allows), so a short sentence is heard in its own context rather than padded with zeros.
    """
    start, end = span
    first = min(max(int(math.floor(start * sr / HOP_LENGTH)), 0), n_frames)
    last = min(max(int(math.ceil(end * sr / HOP_LENGTH)), first), n_frames)
    missing = min_frames - (last - first)
    if missing > 0 and first < n_frames:
        first = max(0, min(first - missing // 2, n_frames - min_frames))
        last = min(n_frames, first + min_frames)
    return first, last


def window_starts(n: int, frames: int = 100, hop: int = WINDOW_HOP) -> list[int]:
    """Start offsets of overlapping ``frames``-long windows over ``n`` frames (last one flush with the end)."""
    if n <= frames:
        return [0]
    starts = list(range(0, n - frames + 1, hop))
    if starts[-1] != n - frames:
        starts.append(n - frames)
    return starts


# ---------------------------------------------------------------- baselines and prosody

@dataclass(frozen=True)
class Prosody:
    """Median F0 of voiced frames (Hz, NaN when none), RMS level of active frames (dBFS), voiced segments per second."""

    pitch_hz: float
    energy_db: float
    rate_per_s: float

    def relative_to(self, baseline: "NeutralBaseline") -> dict[str, float]:
        """Pitch (ratio, semitones), energy delta (dB) and rate ratio against the baseline's prosody reference."""
        out = {"pitch_ratio": math.nan, "pitch_semitones": math.nan, "energy_delta_db": math.nan, "rate_ratio": math.nan}
        if baseline.pitch_hz and self.pitch_hz > 0:
            out["pitch_ratio"] = self.pitch_hz / baseline.pitch_hz
            out["pitch_semitones"] = 12.0 * math.log2(out["pitch_ratio"])
        if baseline.energy_db is not None:
            out["energy_delta_db"] = self.energy_db - baseline.energy_db
        if baseline.rate_per_s:
            out["rate_ratio"] = self.rate_per_s / baseline.rate_per_s
        return out


PROSODY_FRAME, PROSODY_HOP = 1024, 256
PROSODY_BLOCK = 60 * SAMPLE_RATE  # samples per analysis block
FMIN, FMAX = 60.0, 400.0
ACTIVE_DB = 30.0   # frames within this many dB of the loud (99th percentile) frames count as speech
VOICED_ZCR = 0.15  # zero-crossing rate above this is unvoiced (fricatives, noise)
MIN_VOICED_RUN = 3  # frames (48 ms) for a voiced run to count as a segment


def _prosody_frames(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame F0 (yin), RMS and zero-crossing rate, block by block so long inputs stay bounded."""
    f0s, rmss, zcrs = [], [], []
    step = (PROSODY_BLOCK // PROSODY_HOP) * PROSODY_HOP
    for a in range(0, max(len(y) - PROSODY_FRAME, 0) + 1, step):
        seg = y[a:a + step + PROSODY_FRAME - PROSODY_HOP]
        if len(seg) < PROSODY_FRAME:
            break
        kw = dict(frame_length=PROSODY_FRAME, hop_length=PROSODY_HOP, center=False)
        f0s.append(librosa.yin(seg, fmin=FMIN, fmax=FMAX, sr=sr, **kw))
        rmss.append(librosa.feature.rms(y=seg, **kw)[0])
        zcrs.append(librosa.feature.zero_crossing_rate(seg, **kw)[0])
    if not f0s:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(f0s), np.concatenate(rmss), np.concatenate(zcrs)


def prosody(samples: np.ndarray, sr: int = SAMPLE_RATE, span: Span | None = None) -> Prosody:
    """Pitch, loudness and speaking rate of a recording or of one (start_s, end_s) span of it.

    Voicing is decided by energy (within ``ACTIVE_DB`` of the loudest frames) and a low
    zero-crossing rate, which keeps ``librosa.yin`` fast: ten minutes take a few seconds.
    The rate is voiced segments (syllable nuclei, roughly) per second between the first
    and last active frame, so long pauses lower it.
    """
    y = np.asarray(samples, dtype=np.float32)
    if span is not None:
        y = y[int(span[0] * sr):int(span[1] * sr)]
    f0, rms, zcr = _prosody_frames(y, sr)
    db = 20.0 * np.log10(rms + 1e-10)
    if len(db) == 0 or db.max() < -90:
        return Prosody(math.nan, math.nan, 0.0)
    active = db > max(np.percentile(db, 99) - ACTIVE_DB, -70.0)
    voiced = active & (zcr < VOICED_ZCR) & (f0 > FMIN * 1.05) & (f0 < FMAX * 0.95)
    pitch = float(np.median(f0[voiced])) if voiced.any() else math.nan
    energy = float(10.0 * np.log10(np.mean(rms[active] ** 2) + 1e-20))
    idx = np.flatnonzero(active)
    duration = (idx[-1] - idx[0] + 1) * PROSODY_HOP / sr
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return Prosody(pitch, energy, float(np.sum(runs >= MIN_VOICED_RUN) / duration))


@dataclass(frozen=True)
class NeutralBaseline:
    """Neutral voice reference: MFCC mean/std per coefficient, plus optional prosody reference."""

    mean: np.ndarray
    std: np.ndarray
    name: str = "custom"
    pitch_hz: float | None = None
    energy_db: float | None = None
    rate_per_s: float | None = None

    def __post_init__(self):
        for field in ("mean", "std"):
            value = np.asarray(getattr(self, field), dtype=np.float32)
            if value.ndim != 1:
                raise ValueError(f"baseline {field} must be one value per MFCC coefficient, got shape {value.shape}")
            object.__setattr__(self, field, value)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"baseline mean {self.mean.shape} and std {self.std.shape} differ in shape")

    def normalise(self, x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
        return (x - self.mean) / (self.std + eps)

    @classmethod
    def from_config(cls, name: str, audio: AudioConfig) -> "NeutralBaseline":
        if name not in audio.baselines:
            raise ModelError(f"no baseline {name!r} in [audio.baselines]; have {sorted(audio.baselines)}")
        b = audio.baselines[name]
        return cls(np.array(b.mean), np.array(b.std), name, b.pitch_hz, b.energy_db, b.rate_per_s)

    def save_json(self, path: str | Path) -> None:
        data = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in asdict(self).items()}
        Path(path).write_text(json.dumps(data, indent=2))

    @classmethod
    def load_json(cls, path: str | Path) -> "NeutralBaseline":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{"name": Path(path).stem, **data})
        except (OSError, ValueError, TypeError) as exc:
            raise BaselineError(f"{path}: not a readable baseline JSON ({exc})") from exc


def clip_mean(samples: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """The original's per-file statistic: mean over the padded/cut (frames, n_mfcc) sequence."""
    return pad_or_cut(mfcc(samples, n_mfcc=cfg.n_mfcc), cfg.frames).mean(axis=0)


def build_baseline(clips: list[np.ndarray], name: str = "personal", cfg: AudioConfig | None = None,
                   sr: int = SAMPLE_RATE) -> NeutralBaseline:
    """A personal baseline from ≥ 2 neutral clips: mean and std across the per-file means, plus median prosody."""
    cfg = cfg or default_config().audio
    if len(clips) < 2:
        raise BaselineError(f"a baseline needs at least 2 neutral clips (std across clips), got {len(clips)}")
    means = np.stack([clip_mean(c, cfg) for c in clips])
    pros = [prosody(c, sr) for c in clips]
    return NeutralBaseline(means.mean(axis=0), means.std(axis=0), name,
                           float(np.nanmedian([p.pitch_hz for p in pros])),
                           float(np.median([p.energy_db for p in pros])),
                           float(np.median([p.rate_per_s for p in pros])))


def resolve_baseline(spec: str, cfg: Config | None = None, pitch_hz: float | None = None) -> NeutralBaseline:
    """``"male"`` / ``"female"`` (any name in [audio.baselines]), a path to a baseline JSON, or ``"auto"``.

    ``"auto"`` takes the configured baseline whose reference pitch is nearest (in semitones)
    to ``pitch_hz``, the speaker's measured median pitch; without one, the first configured.
    """
    cfg = cfg or default_config()
    if spec == "auto":
        named = {k: b for k, b in cfg.audio.baselines.items() if b.pitch_hz}
        spec = next(iter(cfg.audio.baselines))
        if pitch_hz and math.isfinite(pitch_hz) and named:
            spec = min(named, key=lambda k: abs(math.log2(pitch_hz / named[k].pitch_hz)))
    if spec in cfg.audio.baselines:
        return NeutralBaseline.from_config(spec, cfg.audio)
    if Path(spec).is_file():
        return NeutralBaseline.load_json(spec)
    raise ModelError(f"baseline {spec!r} is neither one of {sorted(cfg.audio.baselines)} nor an existing JSON file")


# ---------------------------------------------------------------- model loading

def _read_labels(path: Path) -> list[str]:
    """labels.json as a list, an {"0": "ANGRY"} id→label dict or a {"ANGRY": 0} label→id dict."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read labels ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("labels"), (list, dict)):
        data = data["labels"]
    if isinstance(data, list):
        return [str(x) for x in data]
    if isinstance(data, dict) and all(isinstance(v, int) for v in data.values()):
        return [k for k, _ in sorted(data.items(), key=lambda kv: kv[1])]
    if isinstance(data, dict) and all(str(k).isdigit() for k in data):
        return [str(data[k]) for k in sorted(data, key=int)]
    raise ModelError(f"{path}: labels must be a list or an id→label dict")


def _locate(spec: str) -> tuple[Path, Path, str]:
    """(weights file, labels.json, model id) for embedded, local directory / file, or hub id.

    A directory's ``model.safetensors`` is preferred over the original's pickled state dicts.
    """
    if spec in ("embedded", "embedded:default"):
        return EMBEDDED_DIR / "model.safetensors", EMBEDDED_DIR / "labels.json", "embedded:audio-cnn-bilstm"
    path = Path(spec).expanduser()
    if path.is_dir():
        names = ("model.safetensors", "pytorch_model.pth", "model.pt", "model.pth")
        for name in names:
            if (path / name).is_file():
                return path / name, path / "labels.json", str(path)
        raise ModelError(f"{path}: none of {' / '.join(names)} in this directory")
    if path.is_file():
        return path, path.with_name("labels.json"), str(path)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        try:
            from huggingface_hub import hf_hub_download
            weights = hf_hub_download(spec, "pytorch_model.pth")
            labels = hf_hub_download(spec, "labels.json")
        except Exception as exc:  # network, auth, missing repo: all reported the same way
            raise ModelError(f"cannot download audio model {spec!r} from the Hugging Face hub: {exc}") from exc
        return Path(weights), Path(labels), spec
    raise ModelError(f"audio model {spec!r} is neither a directory, a .pth file nor a hub id")


class AudioEmotionModel:
    """A loaded audio model whose output columns follow ``labels`` (the config's English order)."""

    def __init__(self, net: AudioEmotionNet, model_labels: list[str], labels: tuple[str, ...],
                 model_id: str, cfg: AudioConfig):
        missing = [lab for lab in labels if lab not in model_labels]
        if missing:
            raise ModelError(f"audio model {model_id} lacks labels {missing}; it has {model_labels}")
        self.net = net.eval()
        self.labels = tuple(labels)
        self.model_id = model_id
        self.cfg = cfg
        self._order = np.array([model_labels.index(lab) for lab in labels])

    def _probs(self, windows: np.ndarray) -> np.ndarray:
        """Softmax over (N, frames, n_mfcc) normalised windows, in config label order (extra labels dropped)."""
        out = []
        with torch.inference_mode():
            for a in range(0, len(windows), BATCH_WINDOWS):
                x = torch.from_numpy(np.ascontiguousarray(windows[a:a + BATCH_WINDOWS].transpose(0, 2, 1)))
                out.append(torch.softmax(self.net(x.float()), dim=1).numpy())
        p = np.concatenate(out)[:, self._order]
        return p / p.sum(axis=1, keepdims=True)

    def _score(self, feats: np.ndarray, frame_spans: list[tuple[int, int]], baseline: NeutralBaseline) -> np.ndarray:
        """Mean window probabilities per frame span; windows built lazily, chunk by chunk."""
        frames = self.cfg.frames
        owners, starts, ends = [], [], []
        for i, (a, b) in enumerate(frame_spans):
            for s in window_starts(b - a, frames):
                owners.append(i)
                starts.append(a + s)
                ends.append(min(a + s + frames, b))
        sums = np.zeros((len(frame_spans), len(self.labels)))
        counts = np.zeros(len(frame_spans))
        for c in range(0, len(owners), BATCH_WINDOWS):
            sl = slice(c, c + BATCH_WINDOWS)
            chunk = np.stack([pad_or_cut(feats[s:e], frames) for s, e in zip(starts[sl], ends[sl])])
            p = self._probs(baseline.normalise(chunk, self.cfg.eps).astype(np.float32))
            np.add.at(sums, owners[sl], p)
            np.add.at(counts, owners[sl], 1)
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)

    def predict_spans(self, samples: np.ndarray, spans: list[Span], baseline: NeutralBaseline,
                      feats: np.ndarray | None = None) -> np.ndarray:
        """(n_spans, n_labels) probabilities, each span scored by windows of its own frames.

        A span shorter than one window is centred in a window of the surrounding audio.
        ``feats`` is the recording's ``mfcc`` when the caller already has it. A span with no
        frames inside the recording is scored as one all-padding window.
        """
        feats = mfcc(samples, n_mfcc=self.cfg.n_mfcc) if feats is None else feats
        if not spans:
            return np.zeros((0, len(self.labels)), np.float32)
        frame_spans = [span_frames(s, len(feats), min_frames=self.cfg.frames) for s in spans]
        return self._score(feats, frame_spans, baseline)

    def predict_diary(self, samples: np.ndarray, baseline: NeutralBaseline, voiced_spans: list[Span] | None = None,
                      feats: np.ndarray | None = None) -> np.ndarray:
        """(n_labels,) mean window probability over the voiced spans of the diary (``fusion.audio.voiced_spans``)."""
        feats = mfcc(samples, n_mfcc=self.cfg.n_mfcc) if feats is None else feats
        if voiced_spans is None:
            voiced_spans = audio_voiced_spans(audio_from_array(samples, SAMPLE_RATE))
        if not voiced_spans:
            voiced_spans = [(0.0, len(samples) / SAMPLE_RATE)]
        frame_spans = [span_frames(s, len(feats)) for s in voiced_spans]
        weights = np.array([len(window_starts(b - a, self.cfg.frames)) for a, b in frame_spans], float)
        probs = self._score(feats, frame_spans, baseline)
        return (weights @ probs / weights.sum()).astype(np.float32)


def load_net(weights: Path, labels: list[str], source: str) -> AudioEmotionNet:
    """State dict (``.safetensors``, else ``torch.load(weights_only=True)``) into our own architecture, strict."""
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
    net = AudioEmotionNet(num_labels=len(labels))
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"{source}: weights do not match the CNN-BiLSTM with {len(labels)} labels ({exc})") from exc
    return net


def load_audio_model_from(spec: str, cfg: Config) -> AudioEmotionModel:
    """Load without caching (tests, tools); ``load_audio_model`` is the cached entry point."""
    weights, labels_path, model_id = _locate(spec)
    if not weights.is_file():
        raise ModelError(f"{weights}: audio model weights not found")
    if not labels_path.is_file():
        raise ModelError(f"{labels_path}: labels.json not found beside the audio model weights")
    model_labels = _read_labels(labels_path)
    net = load_net(weights, model_labels, model_id)
    return AudioEmotionModel(net, model_labels, cfg.labels.en, model_id, cfg.audio)


_LOADED: dict[tuple, AudioEmotionModel] = {}


def load_audio_model(cfg: Config | None = None) -> AudioEmotionModel:
    """The process-wide audio model named by ``cfg.audio.model``, loaded once."""
    cfg = cfg or default_config()
    a = cfg.audio
    key = (a.model, cfg.labels.en, a.n_mfcc, a.frames, a.eps)
    if key not in _LOADED:
        _LOADED[key] = load_audio_model_from(a.model, cfg)
    return _LOADED[key]
