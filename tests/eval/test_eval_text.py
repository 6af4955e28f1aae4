"""``fusion eval`` (fusion.eval.text) on small real slices of ../shared/data: text and speech to text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusion.cli import app
from fusion.errors import InputError
from fusion.eval.text import error_rates, eval_text, normalise_text, read_rows

runner = CliRunner()
# Measured corpus CER on these three clips with the default settings: 0.00 (all 93 clips: 0.086; tests/test_stt.py
# uses the same clips); 0.35 leaves room for CPU/int8 differences and still fails if the model, language or
# decoding breaks.
STT_CLIPS = ["pfa/pfa00004.flac", "pma/pma00010.flac", "pfl/pfl00006.flac"]
MAX_CER = 0.35


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def shared_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def check_shape(result: dict, labels) -> None:
    assert set(result) >= {"n", "skipped", "skipped_labels", "accuracy", "macro_f1", "uar", "per_label", "confusion"}
    assert result["confusion"]["labels"] == list(labels) and list(result["per_label"]) == list(labels)
    matrix = result["confusion"]["matrix"]
    assert len(matrix) == len(labels) and sum(map(sum, matrix)) == result["n"]
    assert all(0.0 <= result[k] <= 1.0 for k in ("accuracy", "macro_f1", "uar"))


@pytest.fixture(scope="module")
def text_csv(shared_data, tmp_path_factory) -> Path:
    """60 test rows of ko_emotion_dialogue plus 5 train rows that --split test must drop."""
    rows = shared_rows(shared_data / "text" / "ko_emotion_dialogue.csv")
    test = [r for r in rows if r["split"] == "test"][:60]
    train = [r for r in rows if r["split"] == "train"][:5]
    keep = [{k: r[k] for k in ("text", "label", "split")} for r in test + train]
    return write_csv(tmp_path_factory.mktemp("text") / "slice.csv", keep)


def test_text_on_a_test_slice(text_csv, config):
    result = eval_text(text_csv, split="test", progress=False)
    check_shape(result, config.labels.ko)
    assert result["n"] == 60 and result["skipped"] == 0
    assert result["macro_f1"] > 0.4  # whole test split: 0.66; a broken model or label order gives ~0.17


def test_text_dataset_words_and_unknown_labels(tmp_path, config):
    rows = [{"text": "오늘 정말 행복하고 즐거웠어.", "label": "Joy"},
            {"text": "너무 슬퍼서 눈물이 났어.", "label": "SADNESS"},
            {"text": "친구가 약속을 어겨서 화가 나.", "label": "분노"},
            {"text": "아침에 밥을 먹었다.", "label": "중립"},
            {"text": "그냥 그랬어.", "label": "neutral"}]
    result = eval_text(write_csv(tmp_path / "words.csv", rows), progress=False)
    check_shape(result, config.labels.ko)
    assert result["n"] == 3 and result["skipped"] == 2
    assert result["skipped_labels"] == {"중립": 1, "neutral": 1}
    assert result["per_label"]["기쁨"]["support"] == 1 and result["per_label"]["슬픔"]["support"] == 1


def test_missing_columns_and_split_are_input_errors(tmp_path, text_csv):
    bad = write_csv(tmp_path / "bad.csv", [{"sentence": "안녕", "label": "기쁨"}])
    with pytest.raises(InputError, match="text"):
        eval_text(bad, progress=False)
    with pytest.raises(InputError, match="split"):
        read_rows(bad, ("sentence",), split="test")
    with pytest.raises(InputError, match="no rows"):
        read_rows(text_csv, ("text",), split="nosuchsplit")


def test_error_rates_normalise_punctuation_and_spaces():
    assert normalise_text("  그럼, 이번 주말에   우리 미술관 갈까요?! ") == "그럼 이번 주말에 우리 미술관 갈까요"
    cer, wer = error_rates(["그럼 이번 주말에 우리 미술관 갈까요?"], ["그럼 이번주말에, 우리 미술관 갈까요"])
    assert cer == 0.0 and wer > 0.0  # spacing changes words, never characters


@pytest.mark.slow
def test_cli_stt_json(shared_data, tmp_path):
    src = shared_data / "speech" / "ko_transcribed"
    by_path = {r["path"]: r for r in shared_rows(src / "labels.csv")}
    data = write_csv(tmp_path / "stt.csv", [{"path": str(src / p), "transcript": by_path[p]["transcript"]}
                                           for p in STT_CLIPS])
    out = tmp_path / "stt.json"
    result = runner.invoke(app, ["eval", "stt", str(data), "--json", str(out), "--set", "beam_size=5", "-q"])
    assert result.exit_code == 0, result.output
    assert "cer" in result.output and "rtf" in result.output
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert set(saved) >= {"n", "cer", "wer", "rtf", "settings", "items"} and saved["n"] == 3
    assert saved["settings"]["beam_size"] == 5 and saved["rtf"] > 0
    assert saved["cer"] < MAX_CER, saved["items"]


def test_cli_text_json_to_stdout(text_csv, config):
    result = runner.invoke(app, ["eval", "text", str(text_csv), "--split", "test", "--json", "-", "-q"])
    assert result.exit_code == 0, result.output
    saved = json.loads(result.stdout)
    check_shape(saved, config.labels.ko)
    assert saved["task"] == "text" and saved["n"] == 60 and saved["split"] == "test"


def test_cli_reports_a_bad_csv_and_exits_2(tmp_path):
    result = runner.invoke(app, ["eval", "audio", str(tmp_path / "missing.csv"), "-q"])
    assert result.exit_code == 2
    assert "missing.csv" in result.output


def test_cli_refuses_an_unwritable_json_path_before_evaluating(tmp_path):
    data = tmp_path / "few.csv"
    data.write_text("text,label\n오늘 정말 기뻐,기쁨\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "text", str(data), "--json", str(tmp_path / "no" / "r.json"), "--quiet"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "no").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["few.csv"]
