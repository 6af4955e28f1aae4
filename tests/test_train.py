"""``fusion train`` on tiny real subsets: each trainer beats chance on held-out rows, writes a directory the
product loads, reproduces its weights, and evaluates with ``--eval-only``; data and output are found as documented."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fusion.cli import app
from fusion.cli.train import data_root
from fusion.config import default_config
from fusion.text.model import EMBEDDED_DIR, EmbeddedTextModel, HFTextModel, load_text_model
from fusion.train.alerts import CALM, GAP_FALSE_ALARMS, GRID, Clips, gap_thresholds, noise_thresholds
from fusion.train.text import train as train_text
from fusion.train.text_fit import CANDIDATES as TEXT_CANDIDATES
from fusion.voice.model import EMBEDDED_ROOT, load_audio_model_from
from fusion.voice.prosody import NeutralBaseline
from tests.text.test_text_model import build_tiny_model, text_config

runner = CliRunner()
SENTENCES = ["오늘 정말 행복하고 즐거웠어.", "엄마가 돌아가셔서 너무 슬퍼.", "아침에 밥을 먹었다."]
# Chance for a classifier that ignores its input: macro-F1 / UAR = 1 / labels present.
TEXT_CHANCE = 1 / 6
CNN_CHANCE = {"ravdess": 1 / 6, "emodb": 1 / 5, "ko_emotional": 1 / 3}


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """Feature caches of this module in a fresh folder (the first run computes them, as a user's would)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("fusion-cache")
        mp.setenv("FUSION_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def speech_cache(tmp_path_factory):
    """One feature cache for the Whisper-head and alert-rule trainers (the same clips)."""
    return tmp_path_factory.mktemp("speech-cache")


RAVDESS_KEPT = ("01", "02", "05", "07", "08", "09", "10")  # test, dev and train actors


@pytest.fixture(scope="module")
def few_speakers(shared_data, tmp_path_factory):
    """A data folder over the real clips of fewer RAVDESS actors (all EmoDB and Korean speakers), for the
    Whisper-encoder trainers, whose cost is one encoder pass per clip."""
    import csv

    root = tmp_path_factory.mktemp("data")
    for ds in ("ravdess", "emodb", "ko_emotional"):
        source = shared_data / "speech" / ds
        with (source / "labels.csv").open(encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [{**r, "path": str(source / r["path"])} for r in reader
                    if ds != "ravdess" or r["speaker"] in RAVDESS_KEPT]
        (root / "speech" / ds).mkdir(parents=True)
        with (root / "speech" / ds / "labels.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, reader.fieldnames)
            writer.writeheader()
            writer.writerows(rows)
    return root


def _arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _invoke(args: list[str]):
    t0 = time.perf_counter()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result, time.perf_counter() - t0


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_train_text_beats_chance_on_the_test_split_and_reproduces_its_weights(tmp_path, shared_data, config):
    """20 rows per label: held-out macro-F1 well above 1/6, with the model card's --with-embeddings run."""
    out = tmp_path / "text"
    _invoke(["train", "text", "--out", str(out), "--data", str(shared_data), "--limit-per-class", "20",
             "--seed", "3", "--with-embeddings", "--quiet"])
    meta = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(config.labels.ko) and meta["recipe"]["seed"] == 3
    assert meta["training_data"]["limit_per_class"] == 20 and 0.05 <= meta["neutral"]["threshold"] <= 0.95
    assert set(meta["recipe"]["dev_macro_f1_by_candidate"]) == set(TEXT_CANDIDATES)
    assert meta["metrics"]["test"]["n"] == 120 and meta["metrics"]["test"]["macro_f1"] > TEXT_CHANCE + 0.15
    model = load_text_model(text_config(backend="embedded", model=str(out)), config.labels.ko)
    assert isinstance(model, EmbeddedTextModel)
    joy, sad = (config.labels.ko.index(label) for label in ("기쁨", "슬픔"))
    probs = model.predict_proba(SENTENCES)
    assert probs[0].argmax() == joy and probs[1].argmax() == sad
    again = tmp_path / "again"
    train_text(shared_data / "text", again, 3, limit_per_class=20, progress=False, candidates=list(TEXT_CANDIDATES))
    first, second = _arrays(out / "weights.npz"), _arrays(again / "weights.npz")
    assert first.keys() == second.keys() and "neutral_coef" in first
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_train_text_eval_only_reports_the_shipped_model_and_writes_nothing(tmp_path, shared_data):
    """Without --out, --eval-only measures the shipped weights: the model card's test macro-F1, nothing rewritten."""
    before = _mtimes(EMBEDDED_DIR)
    result, _ = _invoke(["train", "text", "--eval-only", "--data", str(shared_data), "--quiet"])
    line = next(s for s in result.output.splitlines() if s.startswith("test: macro-F1"))
    assert float(line.split()[2]) > 0.6 and "(n=1338" in line
    assert _mtimes(EMBEDDED_DIR) == before


def test_train_text_hf_recipe_on_a_tiny_bert(tmp_path, shared_data, config):
    base = build_tiny_model(tmp_path / "base")
    out = tmp_path / "hf"
    args = ["train", "text", "--recipe", "hf", "--base", str(base), "--out", str(out), "--data", str(shared_data),
            "--limit-per-class", "7", "--epochs", "2", "--max-length", "32", "--seed", "0", "--quiet"]
    _invoke(args)
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    label_map = json.loads((out / "label_map.json").read_text(encoding="utf-8"))
    assert label_map == {label: i for i, label in enumerate(config.labels.ko)}
    meta = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert meta["training_data"]["rows"] == 42 and meta["recipe"]["lr"] == 2e-5 and meta["recipe"]["batch_size"] == 16
    assert 1 <= meta["recipe"]["best_epoch"] <= 2 and {"dev", "test"} <= set(meta["metrics"])
    model = load_text_model(text_config(backend="hf", model=str(out), max_length=32), config.labels.ko)
    assert isinstance(model, HFTextModel)
    probs = model.predict_proba(SENTENCES)
    assert probs.shape == (3, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    again = tmp_path / "again"
    _invoke(args[:7] + [str(again)] + args[8:])
    from safetensors.numpy import load_file

    first, second = load_file(out / "model.safetensors"), load_file(again / "model.safetensors")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def _cnn_test_uar(figures: dict) -> float:
    """Mean over datasets of test UAR (gender baselines) minus its chance level."""
    return float(np.mean([figures[f"{ds}/gender/uar"] - chance for ds, chance in CNN_CHANCE.items()]))


@pytest.mark.slow
def test_train_cnn_bilstm_beats_chance_on_test_speakers_and_eval_only_agrees(tmp_path, shared_data, config):
    """12 clips per label, split and dataset, no tempo/pitch copies: unseen speakers are recognised above chance."""
    out, cache = tmp_path / "audio", tmp_path / "cache"
    args = ["train", "audio", "--arch", "cnn-bilstm-mfcc", "--out", str(out), "--data", str(shared_data),
            "--cache", str(cache), "--limit-per-class", "12", "--epochs", "60", "--set", "patience=60",
            "--set", "aug_copies=0", "--seed", "0", "--quiet"]
    _invoke(args)
    meta = json.loads((out / "config.json").read_text())
    assert meta["limit_per_class"] == 12 and meta["recipe"]["aug_copies"] == 0 and meta["recipe"]["patience"] == 60
    assert json.loads((out / "labels.json").read_text()) == list(config.labels.en)
    assert _cnn_test_uar(meta["metrics"]["test"]) > 0.07, meta["metrics"]["test"]
    model = load_audio_model_from(str(out), config)
    baseline = NeutralBaseline.from_config("female", config.audio)
    probs = model.predict(np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), [], [(0.0, 2.0)],
                          baseline).diary
    assert probs.shape == (6,) and abs(probs.sum() - 1) < 1e-5 and model.architecture == "cnn-bilstm-mfcc"
    result, _ = _invoke(["train", "audio", "--arch", "cnn-bilstm-mfcc", "--eval-only", "--out", str(out), "--data",
                         str(shared_data), "--cache", str(cache), "--limit-per-class", "12", "--quiet"])
    printed = dict(line.split() for line in result.output.split("test:\n")[1].splitlines() if line.startswith("  "))
    assert printed == {key: f"{value:.3f}" for key, value in meta["metrics"]["test"].items()}


@pytest.mark.slow
def test_train_cnn_bilstm_is_reproducible(tmp_path, shared_data, config):
    """The same seed and clips give the same weights, tensor by tensor."""
    args = ["train", "audio", "--arch", "cnn-bilstm-mfcc", "--out", "OUT", "--data", str(shared_data),
            "--cache", str(tmp_path / "cache"), "--limit-per-class", "2", "--epochs", "3", "--seed", "0", "--quiet"]
    for name in ("first", "second"):
        _invoke([str(tmp_path / name) if a == "OUT" else a for a in args])
    from safetensors.torch import load_file

    first = load_file(tmp_path / "first" / "model.safetensors")
    second = load_file(tmp_path / "second" / "model.safetensors")
    assert set(first) == set(load_audio_model_from(str(tmp_path / "first"), config).scorer.net.state_dict())
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.slow
def test_train_whisper_head_beats_chance_on_test_speakers_and_eval_only_agrees(tmp_path, few_speakers, config,
                                                                                speech_cache):
    """One clip per speaker and label: dev protocol, refit, and test UAR far above chance on unseen speakers."""
    out = tmp_path / "voice"
    args = ["train", "audio", "--arch", "whisper-encoder-lr", "--out", str(out), "--data", str(few_speakers),
            "--cache", str(speech_cache), "--limit-per-class", "1", "--quiet"]
    result, _ = _invoke(args)
    assert "test (reported, not used for any choice)" in result.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["architecture"] == "whisper-encoder-lr" and meta["labels"][-1] == config.audio.neutral_label
    assert {"ravdess dev uar", "ema uar", "emh sad_auc"} <= set(meta["metrics"]["dev"])
    assert len(meta["candidates"]) >= 5 and meta["limit_per_speaker_label"] == 1
    test = meta["metrics"]["test"]
    assert test["ravdess test uar"] > 1 / 6 + 0.15 and test["emodb test uar"] > 1 / 6 + 0.15, test
    assert test["ko_emotional test sad_auc"] > 0.7, test
    model = load_audio_model_from(str(out), config)
    scores = model.predict(np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), [(0.0, 1.0)],
                           [(0.0, 2.0)], None)
    assert scores.diary.shape == (6,) and 0 <= scores.diary_neutral <= 1
    result, _ = _invoke(["train", "audio", "--eval-only", "--out", str(out), "--data", str(few_speakers),
                         "--cache", str(speech_cache), "--limit-per-class", "1", "--quiet"])
    assert f"ravdess test uar {test['ravdess test uar']:.3f}" in result.output
    again = tmp_path / "again"
    _invoke(args[:5] + [str(again)] + args[6:])
    from safetensors.numpy import load_file

    first, second = load_file(out / "model.safetensors"), load_file(again / "model.safetensors")
    for key in ("mean", "scale", "weight", "bias"):
        np.testing.assert_array_equal(first[key], second[key])


@pytest.mark.slow
def test_train_whisper_head_with_augmentation_measures_each_condition(tmp_path, few_speakers, speech_cache):
    """--augment gain-25: the clips are encoded quieter too; dev and test figures hold that condition's, and the
    layers 2+3 candidates are also tried with the quieter copies in training."""
    out = tmp_path / "voice"
    _invoke(["train", "audio", "--arch", "whisper-encoder-lr", "--out", str(out), "--data", str(few_speakers),
             "--cache", str(speech_cache), "--limit-per-class", "1", "--augment", "gain-25", "--quiet"])
    meta = json.loads((out / "config.json").read_text())
    names = [c["candidate"] for c in meta["candidates"]]
    assert sum("augmented gain-25" in n for n in names) == sum("layers 2+3," in n for n in names) / 2 >= 1
    assert {"ravdess dev uar", "gain-25 ravdess dev uar", "gain-25 ema sad_auc"} <= set(meta["metrics"]["dev"])
    assert "gain-25 ko_emotional test sad_auc" in meta["metrics"]["test"]
    plain = next(c for c in meta["candidates"] if c["candidate"].startswith("layers 2+3, C 0.1, Korean weight 10")
                 and "augmented" not in c["candidate"])
    augmented = next(c for c in meta["candidates"] if c["candidate"].endswith("weight 10, augmented gain-25")
                     and "C 0.1," in c["candidate"])
    assert plain["gain-25 ravdess dev uar"] != augmented["gain-25 ravdess dev uar"] or \
        plain["gain-25 ema uar"] != augmented["gain-25 ema uar"] or plain["score"] != augmented["score"]
    # The choice: the best score over both conditions, an augmented head only if no worse on clean dev audio.
    best_plain = max((c for c in meta["candidates"] if "augmented" not in c["candidate"]), key=lambda c: c["score"])
    allowed = [c for c in meta["candidates"]
               if "augmented" not in c["candidate"] or c["clean score"] >= best_plain["clean score"]]
    chosen = max(allowed, key=lambda c: c["score"])
    assert meta["recipe"]["augment"] == (["gain-25"] if "augmented" in chosen["candidate"] else [])
    assert meta["metrics"]["dev"]["score"] == pytest.approx(chosen["score"], abs=1e-4)


@pytest.mark.slow
def test_train_alerts_rule_separates_sad_voices_of_test_speakers(tmp_path, few_speakers, speech_cache):
    """Chosen on train+dev only, as recorded and under a recording condition, the depressed-voice rule tells sad
    from happy/neutral/angry test clips above chance under both, and counts angry voices among its false alarms."""
    json_out = tmp_path / "alerts.json"
    result, _ = _invoke(["train", "alerts", "--data", str(few_speakers), "--cache", str(speech_cache),
                         "--limit-per-class", "1", "--degrade", "clean,gain-25", "--json", str(json_out), "--quiet"])
    assert "[alerts] depressed_pitch_weight" in result.output and "[fusion] pleasant_shift" in result.output
    chosen = json.loads(json_out.read_text())
    found = chosen["voice"]
    assert found["depressed_score"] <= found["depressed_score_sentence"]
    assert chosen["words"]["dev"].endswith("dev.jsonl")
    assert set(found["conditions_dev"]) == set(found["test"]) == {"clean", "gain-25", "personal"}
    assert "angry" in found["conditions_dev"]["clean"]["false_alarms"]
    assert set(found["confusion_dev"]) == {"clean", "gain-25"}
    for condition, figures in found["test"].items():
        assert figures["worst_case_accuracy"] > 0.6, (condition, figures)
    assert "[alerts] agitated_voice_arousal" in result.output and "[alerts] depressed_noise_margin" in result.output
    assert set(found["noise"]["conditions"]) == {"clean", "gain-25", "personal"}
    gaps = found["gaps"]
    assert set(gaps["conditions"]) == {"clean", "gain-25"}
    for figures in gaps["conditions"].values():
        assert figures["agitated_calm"] <= GAP_FALSE_ALARMS and figures["upbeat_calm"] <= GAP_FALSE_ALARMS


def test_the_gap_rules_voice_thresholds_are_the_lowest_that_keep_calm_voices_quiet_in_every_condition():
    """Calm voices sit higher under one condition than the other: the threshold follows the worse one, and one grid
    step lower would let more than GAP_FALSE_ALARMS of them through there; the upbeat pair is the one that lets most
    happy voices through."""
    rng = np.random.default_rng(0)
    label = np.array(["calm"] * 200 + ["neutral"] * 100 + ["angry"] * 100 + ["happy"] * 100)
    clean = np.column_stack([rng.uniform(-0.3, 0.2, 500), rng.uniform(-0.4, 0.3, 500)])
    clean[label == "angry"] = np.column_stack([rng.uniform(-0.8, -0.3, 100), rng.uniform(0.4, 0.9, 100)])
    clean[label == "happy"] = np.column_stack([rng.uniform(0.3, 0.9, 100), rng.uniform(0.1, 0.7, 100)])
    noisy = clean + np.where(np.isin(label, CALM), 0.2, 0.0)[:, None]  # calm voices read livelier under noise
    found = gap_thresholds({"clean": clean, "noisy": noisy}, label)
    calm = np.isin(label, CALM)
    arousal = found["agitated_voice_arousal"]
    assert (noisy[calm, 1] >= arousal).mean() <= GAP_FALSE_ALARMS < (noisy[calm, 1] >= arousal - 0.01).mean()
    assert found["conditions"]["clean"]["agitated_calm"] == 0.0, "the clean condition alone would allow lower"
    valence, up = found["upbeat_voice_valence"], found["upbeat_voice_arousal"]
    for points in (clean, noisy):
        assert ((points[calm, 0] >= valence) & (points[calm, 1] >= up)).mean() <= GAP_FALSE_ALARMS
    recall = np.mean([f["upbeat_recall_happy"] for f in found["conditions"].values()])
    for a in (0.0, 0.2, 0.4, 0.6):  # no other arousal floor, with its own lowest valence, hears more happy voices
        v = min(t for t in GRID if all(((p[calm, 0] >= t) & (p[calm, 1] >= a)).mean() <= GAP_FALSE_ALARMS
                                         for p in (clean, noisy)))
        assert np.mean([((p[label == "happy", 0] >= v) & (p[label == "happy", 1] >= a)).mean()
                        for p in (clean, noisy)]) <= recall + 1e-12


def test_the_noise_margin_is_the_least_that_keeps_noisy_false_alarms_at_their_clean_rate():
    """Calm voices score 0.3 higher in noisy (17 dB) recordings: the chosen margin lifts the threshold there just
    enough that no emotion's false alarms exceed their rate as recorded, one grid step less would not, and a clean
    recording's threshold is untouched."""
    rng = np.random.default_rng(0)
    label = np.array(["sad"] * 200 + ["calm"] * 200 + ["angry"] * 100)
    clean = np.where(label == "sad", rng.uniform(0.3, 1.0, 500), rng.uniform(0.0, 0.5, 500))
    noisy = clean + np.where(label == "sad", 0.1, 0.3)
    score = np.concatenate([clean, noisy])
    clips = Clips(np.tile(label, 2), np.array(["ko clean"] * 500 + ["ko noisy"] * 500),
                  np.array([60.0] * 500 + [17.0] * 500))
    found = noise_thresholds(score, clips, 0.4)
    margin, start = found["depressed_noise_margin"], found["depressed_clean_snr_db"]
    assert found["met"] and margin > 0

    def alarms(voices: np.ndarray, m: float) -> float:  # the worst emotion's false alarms at margin m
        lift = m * min(max((start - 17.0) / (start - default_config().quality.min_snr_db), 0.0), 1.0)
        return max(float((voices[label == lab] >= 0.4 + lift).mean()) for lab in ("calm", "angry"))

    assert alarms(noisy, margin) <= alarms(clean, 0.0) < alarms(noisy, margin - 0.05)
    assert found["conditions"]["clean"]["recall"] == (clean[label == "sad"] >= 0.4).mean(), "clean untouched"


@pytest.mark.slow
def test_speaker_report_of_the_shipped_cnn_hears_sadness_against_a_personal_baseline(tmp_path, shared_data):
    """The model card's --eval-only --speaker-report: P(SAD) and pitch separate sad Korean test clips."""
    report = tmp_path / "report.json"
    result, _ = _invoke(["train", "audio", "--arch", "cnn-bilstm-mfcc", "--eval-only", "--speaker-report", str(report),
                         "--data", str(shared_data), "--cache", str(tmp_path / "cache"), "--limit-per-class", "1",
                         "-q"])
    rows = json.loads(report.read_text())
    assert {r["speaker"] for r in rows} == {"emg", "ned"} and {"sad", "neutral"} <= {r["label"] for r in rows}
    aucs = {line.split("gender")[0].strip(): float(line.split()[-1]) for line in result.output.splitlines()
            if "personal" in line and "gender" in line and "|" not in line}
    assert aucs["P(SAD)"] > 0.9 and aucs["pitch drop"] > 0.9, aucs


def test_prosody_reference_reproduces_the_configured_one(shared_data, config):
    """``--prosody-reference`` derives the [audio.baselines] prosody values the config ships."""
    result, _ = _invoke(["train", "audio", "--prosody-reference", "--data", str(shared_data)])
    reference = json.loads(result.output)
    for gender in ("male", "female"):
        shipped = config.audio.baselines[gender]
        for key, value in reference[gender].items():
            assert abs(value - getattr(shipped, key)) <= 0.06, (gender, key)


@pytest.mark.slow
def test_retraining_the_shipped_recipe_reproduces_the_shipped_head(tmp_path, shared_data, config):
    """All the data, the shipped candidate only (its choice is in the model card): on every test clip the
    retrained head's probabilities match the shipped head's to within CPU noise."""
    from fusion.train import voice as tv
    from fusion.voice.whisper import ARCHITECTURE, read_head

    shipped_dir = EMBEDDED_ROOT / ARCHITECTURE
    cand = tv.Candidate.read(shipped_dir)
    speech = shared_data / "speech"
    tv.train(tmp_path / "voice", speech, tmp_path / "cache", progress=False, candidates=[cand])
    corpus = tv.load_corpus(speech, tmp_path / "cache", config, progress=False)
    x = corpus.x(cand.layers)[corpus.mask(split="test")].astype(np.float64)
    retrained, shipped = read_head(tmp_path / "voice").probs(x), read_head(shipped_dir).probs(x)
    assert len(x) > 300 and np.abs(retrained - shipped).max() < 0.02


# ---------------------------------------------------------------- where data comes from, where models go

def test_data_comes_from_the_option_then_the_environment_then_the_shared_folder(tmp_path, monkeypatch):
    given, env, shared = tmp_path / "given", tmp_path / "env", tmp_path / "shared" / "data"
    for folder in (given, env, shared):
        folder.mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("FUSION_DATA", str(env))
    assert data_root(given) == given and data_root(None) == env
    monkeypatch.delenv("FUSION_DATA")
    assert data_root(None).resolve() == shared


@pytest.mark.parametrize("command", [["train", "text", "--out", "OUT"], ["train", "audio", "--out", "OUT"],
                                     ["train", "audio", "--arch", "cnn-bilstm-mfcc", "--out", "OUT"],
                                     ["train", "alerts"]])
def test_training_without_data_says_how_to_give_it(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FUSION_DATA", raising=False)
    args = [str(tmp_path / "model") if a == "OUT" else a for a in command]
    result = runner.invoke(app, [*args, "-q"])
    assert result.exit_code == 2 and "--data" in result.output and "FUSION_DATA" in result.output, result.output
    monkeypatch.setenv("FUSION_DATA", str(tmp_path / "nowhere"))
    result = runner.invoke(app, [*args, "-q"])
    assert result.exit_code == 2 and "nowhere: the data folder does not exist" in result.output, result.output
    (tmp_path / "empty").mkdir()
    cache = [] if command[1] == "text" else ["--cache", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, "--data", str(tmp_path / "empty"), *cache, "-q"])
    missing = "text/ko_emotion_dialogue.csv" if command[1] == "text" else "speech/ravdess/labels.csv"
    assert result.exit_code == 2 and missing in result.output, result.output
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("command", [["train", "text"], ["train", "audio"],
                                     ["train", "audio", "--arch", "cnn-bilstm-mfcc"]])
def test_training_writes_into_the_package_only_with_embed(tmp_path, shared_data, command):
    before = _mtimes(EMBEDDED_DIR) | _mtimes(EMBEDDED_ROOT)
    result = runner.invoke(app, [*command, "--data", str(shared_data), "-q"])
    assert result.exit_code == 2 and "--out DIR, or --embed" in result.output, result.output
    result = runner.invoke(app, [*command, "--data", str(shared_data), "--out", str(tmp_path / "m"), "--embed", "-q"])
    assert result.exit_code == 2 and "not both" in result.output, result.output
    assert _mtimes(EMBEDDED_DIR) | _mtimes(EMBEDDED_ROOT) == before and not (tmp_path / "m").exists()


def test_train_help_documents_data_and_output():
    for command in ("text", "audio"):
        text = " ".join(runner.invoke(app, ["train", command, "--help"]).output.replace("│", " ").split())
        assert "FUSION_DATA" in text and "--embed" in text and "replacing the shipped model" in text
