"""``fusion train text|audio`` on tiny real subsets: the written directories load, predict and are reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fusion.audio_branch import load_audio_model_from
from fusion.prosody import NeutralBaseline
from fusion.cli import app
from fusion.text_branch import EmbeddedTextModel, HFTextModel, load_text_model
from fusion.train.text import CANDIDATES as TEXT_CANDIDATES, train as train_text
from tests.test_text_branch import build_tiny_model, text_config

runner = CliRunner()
SENTENCES = ["오늘 정말 행복하고 즐거웠어.", "엄마가 돌아가셔서 너무 슬퍼.", "아침에 밥을 먹었다."]


def _arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_train_text_embedded_cli_writes_a_loadable_reproducible_model(tmp_path, shared_data, config):
    out = tmp_path / "text"
    result = runner.invoke(app, ["train", "text", "--out", str(out), "--data", str(shared_data / "text"),
                                 "--limit-per-class", "25", "--seed", "3", "--with-embeddings", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "dev: macro-F1" in result.output and "test: macro-F1" in result.output
    meta = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(config.labels.ko) and meta["recipe"]["seed"] == 3
    assert set(meta["metrics"]) >= {"dev", "test", "neutral"} and meta["training_data"]["limit_per_class"] == 25
    assert 0.05 <= meta["neutral"]["threshold"] <= 0.95
    model = load_text_model(text_config(backend="embedded", model=str(out)), config.labels.ko)
    assert isinstance(model, EmbeddedTextModel)
    probs = model.predict_proba(SENTENCES)
    assert probs.shape == (3, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    p_neutral = model.predict_neutral(SENTENCES)
    assert p_neutral.shape == (3,) and ((p_neutral >= 0) & (p_neutral <= 1)).all()
    assert model.predict_neutral([]).shape == (0,)
    again = tmp_path / "again"
    train_text(shared_data / "text", again, 3, limit_per_class=25, progress=False, candidates=list(TEXT_CANDIDATES))
    first, second = _arrays(out / "weights.npz"), _arrays(again / "weights.npz")
    assert first.keys() == second.keys() and "neutral_coef" in first
    assert ("embedding_coef" in first) == (meta["embedding"] is not None)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_train_text_hf_recipe_on_a_tiny_bert(tmp_path, shared_data, config):
    base = build_tiny_model(tmp_path / "base")
    out = tmp_path / "hf"
    args = ["train", "text", "--recipe", "hf", "--base", str(base), "--out", str(out), "--data", str(shared_data / "text"),
            "--limit-per-class", "7", "--epochs", "2", "--max-length", "32", "--seed", "0", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert json.loads((out / "label_map.json").read_text(encoding="utf-8")) == {l: i for i, l in enumerate(config.labels.ko)}
    meta = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert meta["training_data"]["rows"] == 42 and meta["recipe"]["lr"] == 2e-5 and meta["recipe"]["batch_size"] == 16
    assert 1 <= meta["recipe"]["best_epoch"] <= 2 and {"dev", "test"} <= set(meta["metrics"])
    model = load_text_model(text_config(backend="hf", model=str(out), max_length=32), config.labels.ko)
    assert isinstance(model, HFTextModel)
    probs = model.predict_proba(SENTENCES)
    assert probs.shape == (3, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert not model.predict_neutral(SENTENCES).any()
    again = tmp_path / "again"
    assert runner.invoke(app, args[:7] + [str(again)] + args[8:]).exit_code == 0
    from safetensors.numpy import load_file

    first, second = load_file(out / "model.safetensors"), load_file(again / "model.safetensors")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_train_audio_cli_tiny_subset_loads_and_is_reproducible(tmp_path, shared_data, config):
    out, cache = tmp_path / "audio", tmp_path / "cache"
    args = ["train", "audio", "--out", str(out), "--data", str(shared_data / "speech"), "--cache", str(cache),
            "--limit-per-class", "1", "--epochs", "2", "--seed", "0", "--quiet", "--arch", "cnn-bilstm-mfcc"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["limit_per_class"] == 1 and set(meta["metrics"]) == {"dev", "test"}
    assert json.loads((out / "labels.json").read_text()) == list(config.labels.en)
    model = load_audio_model_from(str(out), config)
    rng = np.random.default_rng(0)
    baseline = NeutralBaseline.from_config("female", config.audio)
    probs = model.predict(rng.normal(0, 0.1, 16000 * 2).astype(np.float32), [], [(0.0, 2.0)], baseline).diary
    assert probs.shape == (6,) and abs(probs.sum() - 1) < 1e-5 and model.architecture == "cnn-bilstm-mfcc"
    again = tmp_path / "again"
    assert runner.invoke(app, args[:3] + [str(again)] + args[4:]).exit_code == 0
    assert not list(out.glob("*.pt"))
    from safetensors.torch import load_file

    first, second = load_file(out / "model.safetensors"), load_file(again / "model.safetensors")
    assert set(first) == set(model.scorer.net.state_dict())
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_train_audio_whisper_cli_on_a_tiny_subset_writes_a_loadable_reproducible_head(tmp_path, shared_data, config):
    """One clip per speaker and label: dev protocol, refit, test figures, a directory the product loads."""
    out, cache = tmp_path / "voice", tmp_path / "cache"
    args = ["train", "audio", "--arch", "whisper-encoder-lr", "--out", str(out), "--data", str(shared_data / "speech"),
            "--cache", str(cache), "--limit-per-class", "1", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "test (reported, not used for any choice)" in result.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["architecture"] == "whisper-encoder-lr" and meta["labels"][-1] == config.audio.neutral_label
    assert {"ravdess dev uar", "ema uar", "emh sad_auc"} <= set(meta["metrics"]["dev"])
    assert len(meta["candidates"]) >= 5 and meta["limit_per_speaker_label"] == 1
    model = load_audio_model_from(str(out), config)
    rng = np.random.default_rng(0)
    scores = model.predict(rng.normal(0, 0.1, 16000 * 2).astype(np.float32), [(0.0, 1.0)], [(0.0, 2.0)], None)
    assert scores.diary.shape == (6,) and 0 <= scores.diary_neutral <= 1
    again = tmp_path / "again"
    assert runner.invoke(app, args[:5] + [str(again)] + args[6:]).exit_code == 0, "the cached features are reused"
    from safetensors.numpy import load_file

    first, second = load_file(out / "model.safetensors"), load_file(again / "model.safetensors")
    for key in ("mean", "scale", "weight", "bias"):
        np.testing.assert_array_equal(first[key], second[key])


@pytest.mark.slow
def test_retraining_the_shipped_recipe_reproduces_the_shipped_head(tmp_path, shared_data, config):
    """All the data, the shipped candidate only (its choice is in the model card): on every test clip the
    retrained head's probabilities match the shipped head's to within CPU noise."""
    from fusion.train import voice as tv
    from fusion.audio_branch import EMBEDDED_ROOT
    from fusion.voice_whisper import ARCHITECTURE, read_head

    shipped_dir = EMBEDDED_ROOT / ARCHITECTURE
    recipe = json.loads((shipped_dir / "config.json").read_text())["recipe"]
    cand = tv.Candidate(tuple(recipe["layers"]), recipe["C"], recipe["korean_weight"])
    tv.train(tmp_path / "voice", shared_data / "speech", tmp_path / "cache", progress=False, candidates=[cand])
    corpus = tv.load_corpus(shared_data / "speech", tmp_path / "cache", config, progress=False)
    x = corpus.x(cand.layers)[corpus.mask(split="test")].astype(np.float64)
    retrained, shipped = read_head(tmp_path / "voice").probs(x), read_head(shipped_dir).probs(x)
    assert len(x) > 300 and np.abs(retrained - shipped).max() < 0.02


@pytest.mark.parametrize("command", [["train", "audio", "--out", "OUT"], ["train", "audio", "--arch", "cnn-bilstm-mfcc",
                                                                           "--out", "OUT"], ["train", "alerts"]])
def test_training_without_the_speech_data_names_the_missing_file(tmp_path, command):
    args = [str(tmp_path / "model") if a == "OUT" else a for a in command]
    result = runner.invoke(app, [*args, "--data", str(tmp_path / "nowhere"), "--cache", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 2 and "nowhere/ravdess/labels.csv" in result.output, result.output
    assert not (tmp_path / "model").exists()
