"""``fusion analyze`` and ``fusion baseline`` through the real command-line app."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusion.cli import app
from fusion.dates import file_time
from fusion.report import DiaryReport

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "diary_ko.flac"
runner = CliRunner()


def test_analyze_writes_json_and_prints_the_report(tmp_path):
    transcript = tmp_path / "diary.txt"
    transcript.write_text("오늘 정말 즐거웠어. 친구를 만났거든.", encoding="utf-8")
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["analyze", str(SAMPLE), "--json", str(out), "--transcript", str(transcript),
                                 "--gender", "female"])
    assert result.exit_code == 0, result.output
    assert "Alerts" in result.output and "Sentences" in result.output
    report = DiaryReport.model_validate_json(out.read_text(encoding="utf-8"))
    assert report.transcript == "오늘 정말 즐거웠어. 친구를 만났거든."
    assert report.voice.baseline == "female"
    assert report.recorded_at == file_time(SAMPLE) and "decode" in report.timings, "the report analyze(path) gives"


def test_analyze_json_to_stdout_is_only_json(tmp_path):
    transcript = tmp_path / "t.txt"
    transcript.write_text("기분이 좋아.", encoding="utf-8")
    result = runner.invoke(app, ["analyze", str(SAMPLE), "--json", "-", "--transcript", str(transcript)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["schema_version"]


def test_bad_recording_names_the_file_and_exits_2(tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio", encoding="utf-8")
    result = runner.invoke(app, ["analyze", str(fake)])
    assert result.exit_code == 2
    assert "notes.wav" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.wav"], "nothing written beside the input"


def test_missing_transcript_file_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["analyze", str(SAMPLE), "--transcript", str(tmp_path / "none.txt")])
    assert result.exit_code == 2 and "none.txt" in result.output


def test_personal_baseline_round_trip(shared_data, tmp_path):
    calm = sorted((shared_data / "speech" / "ko_emotional" / "ned").glob("ned0000*.flac"))
    out = tmp_path / "me.json"
    result = runner.invoke(app, ["baseline", *map(str, calm), "--out", str(out)])
    assert result.exit_code == 0, result.output
    stored = json.loads(out.read_text(encoding="utf-8"))
    assert len(stored["mean"]) == len(stored["std"]) == 13
    result = runner.invoke(app, ["analyze", str(calm[0]), "--gender", str(out), "--json", "-",
                                 "--transcript", str(_text(tmp_path))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["voice"]["baseline"] == "me"


def test_baseline_needs_two_recordings(shared_data, tmp_path):
    one = shared_data / "speech" / "ko_emotional" / "ned" / "ned00001.flac"
    result = runner.invoke(app, ["baseline", str(one), "--out", str(tmp_path / "me.json")])
    assert result.exit_code == 2
    assert not (tmp_path / "me.json").exists()


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "fusion.cli", "--help"], capture_output=True, text=True, check=True)
    assert "analyze" in result.stdout and "baseline" in result.stdout


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "words.txt"
    path.write_text("아침에 밥을 먹었다.", encoding="utf-8")
    return path


def _config_with(tmp_path: Path, **audio_input) -> Path:
    """configs/default.toml with some [audio_input] fields replaced."""
    import re

    toml = (ROOT / "configs" / "default.toml").read_text(encoding="utf-8")
    for key, value in audio_input.items():
        toml = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", toml, count=1)
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    return path


def test_analyze_stops_decoding_at_the_configured_limit(tmp_path):
    import odd_audio

    joined = odd_audio.joined_mp3(tmp_path / "joined.mp3", rest_s=60)
    result = runner.invoke(app, ["analyze", str(joined), "--config", str(_config_with(tmp_path, max_duration_s=20.0))])
    assert result.exit_code == 2
    assert "joined.mp3" in result.output and "recording too long: decoding passed 2" in result.output


def test_an_output_path_that_cannot_be_written_fails_before_the_analysis(tmp_path):
    for option, target in (("--json", tmp_path / "no" / "such" / "dir" / "out.json"), ("--html", tmp_path)):
        t0 = time.perf_counter()
        result = runner.invoke(app, ["analyze", str(SAMPLE), option, str(target), "--transcript", str(_text(tmp_path))])
        assert result.exit_code == 2, result.output
        assert str(target) in result.output.replace("\n", "") and "cannot write it" in result.output
        assert time.perf_counter() - t0 < 5, "refused before the analysis, not after"


def test_a_baseline_is_refused_before_any_work_when_unwritable_and_from_recordings_that_cannot_make_one(tmp_path,
                                                                                                        shared_data):
    """Two different calm clips make a baseline; the same clip twice (no spread) or silence (no voice) do not, and
    an unwritable --out is refused first; each a one-line error, no traceback."""
    import numpy as np
    import soundfile as sf

    calm = [str(shared_data / "speech" / "ko_emotional" / "ned" / f"ned0000{i}.flac") for i in (1, 2)]
    written = runner.invoke(app, ["baseline", *calm, "--out", str(tmp_path / "me.json")])
    assert written.exit_code == 0 and (tmp_path / "me.json").is_file(), written.output
    for seed, path in enumerate((tmp_path / "a.wav", tmp_path / "b.wav")):  # faint hiss, no voice
        sf.write(path, np.random.default_rng(seed).normal(0, 1e-4, 32000).astype(np.float32), 16000)
    for args, problem in (([*calm, "--out", str(tmp_path / "no" / "me.json")], "the folder"),
                          ([calm[0], calm[0], "--out", str(tmp_path / "x.json")], "sound exactly alike"),
                          ([str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--out", str(tmp_path / "x.json")],
                           "b.wav: holds no voiced speech")):
        result = runner.invoke(app, ["baseline", *args])
        assert result.exit_code == 2 and problem in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output and not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_analyze_runs_without_the_service_packages(tmp_path):
    """The service's packages are installed here, so the machine without them is simulated: ``None`` in
    ``sys.modules`` makes any import of them fail, as it would where ``fusion[serve]`` is not installed."""
    blocked = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "python_multipart", "swagger_ui_bundle")
    code = f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); from fusion.cli import app; app()"
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, "-c", code, "analyze", str(SAMPLE), "-q", "--json", str(out),
                             "--transcript", str(_text(tmp_path))], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert DiaryReport.model_validate_json(out.read_text(encoding="utf-8")).transcript == "아침에 밥을 먹었다."


def test_a_file_name_that_is_not_utf8_is_analysed_and_written_back_losslessly(shared_data, tmp_path):
    """``bad\\xffname.flac``: the report names it in JSON that round-trips to the same bytes, on stdout too, and
    the terminal report and the HTML page are written (before: UnicodeEncodeError after the analysis)."""
    import os

    recording = tmp_path / os.fsdecode(b"bad\xffname.flac")
    recording.write_bytes((shared_data / "speech" / "ko_transcribed" / "pfa" / "pfa00004.flac").read_bytes())
    out, page = tmp_path / "out.json", tmp_path / "out.html"
    result = runner.invoke(app, ["analyze", str(recording), "--transcript", str(_text(tmp_path)), "--json", str(out),
                                 "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert os.fsencode(json.loads(out.read_bytes().decode("utf-8"))["source"]) == os.fsencode(recording)
    assert page.stat().st_size > 0
    result = runner.invoke(app, ["analyze", str(recording), "--transcript", str(_text(tmp_path)), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == str(recording)


def test_an_output_that_is_an_input_or_another_kind_of_file_is_refused_before_anything_is_written(tmp_path):
    """``--json mine.flac``, ``baseline a.flac b.flac --out a.flac``, a text file as --json, a recording as --html:
    one line naming the output, every file as it was (before: the recording was replaced by JSON)."""
    import numpy as np
    import soundfile as sf

    recordings = []
    for name in ("a.flac", "b.flac"):
        sf.write(tmp_path / name, np.random.default_rng(len(recordings)).normal(0, 0.1, 16000), 16000)
        recordings.append(tmp_path / name)
    notes = tmp_path / "notes.txt"
    notes.write_text("my own notes, not a report\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    a, b = map(str, recordings)
    for args, problem in ((["analyze", a, "--json", a], "it is one of the inputs"),
                          (["analyze", a, "--transcript", str(notes), "--json", str(notes)], "one of the inputs"),
                          (["analyze", a, "--json", str(notes)], "the file there is not a fusion report"),
                          (["analyze", a, "--html", b], "the file there is not an HTML page"),
                          (["analyze", a, "--json", "/dev/null"], "not a regular file"),
                          (["baseline", a, b, "--out", a], "it is one of the inputs"),
                          (["baseline", a, b, "--out", str(notes)], "the file there is not a fusion baseline")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and problem in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _at_most_4_gb() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.slow
def test_a_transcript_that_is_no_regular_file_or_too_long_is_refused_without_reading_it(tmp_path):
    """``--transcript FIFO`` (before: hung), ``--transcript /dev/zero`` (before: one process grew to 19.8 GB; here
    capped at 4 GB of address space) and a text over the bound: one line each, before the analysis."""
    import os

    from fusion.cli.main import MAX_TRANSCRIPT_BYTES

    os.mkfifo(tmp_path / "pipe.txt")
    long = tmp_path / "long.txt"
    long.write_text("가" * (MAX_TRANSCRIPT_BYTES // 3 + 1), encoding="utf-8")
    for transcript, problem in ((tmp_path / "pipe.txt", "not a regular file"), ("/dev/zero", "not a regular file"),
                                (long, "the transcript is too long")):
        analyzed = subprocess.run([sys.executable, "-m", "fusion.cli", "analyze", str(SAMPLE), "--transcript",
                                   str(transcript)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                                  preexec_fn=_at_most_4_gb)
        assert analyzed.returncode == 2, analyzed.stderr
        assert f"{transcript}: {problem}" in " ".join(analyzed.stderr.split())
        assert "Traceback" not in analyzed.stderr


def test_the_command_line_loads_a_command_s_stack_only_when_that_command_runs():
    """``fusion --help`` imports no service, training, evaluation or pipeline module and no model or web stack:
    each command imports what it runs inside itself, so the rest works without an extra and starts quickly."""
    heavy = ("fusion.service", "fusion.train", "fusion.eval", "fusion.pipeline", "torch", "faster_whisper", "fastapi",
             "sqlalchemy", "uvicorn")
    code = ("import sys\nfrom fusion.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_symlink_loop_as_recording_or_output_is_one_line_naming_it(tmp_path):
    """Two links pointing at each other: as the recording, as ``--json`` and among a baseline's recordings, a one-line
    error (before: a traceback from resolving the loop, or "file not found")."""
    (tmp_path / "loop1.wav").symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(tmp_path / "loop1.wav")
    loop = str(tmp_path / "loop1.wav")
    for args, problem in ((["analyze", loop], "it is a symlink that leads nowhere"),
                          (["analyze", str(SAMPLE), "-q", "--json", loop],
                           "cannot write it: it is a symlink that leads nowhere"),
                          (["baseline", str(SAMPLE), loop, "--out", str(tmp_path / "b.json")],
                           "it is a symlink that leads nowhere")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (args, result.exception)
        assert f"{loop}: {problem}" in " ".join(result.output.split()), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop1.wav", "loop2.wav"], "nothing written"


def test_a_config_that_is_no_regular_file_is_refused_without_waiting_on_it(tmp_path):
    """``--config FIFO`` (before: waited forever for a writer)."""
    import os

    os.mkfifo(tmp_path / "pipe.toml")
    done = subprocess.run([sys.executable, "-m", "fusion.cli", "analyze", str(SAMPLE), "-q", "--config",
                           str(tmp_path / "pipe.toml")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'pipe.toml'}: cannot read the configuration: not a regular file" in " ".join(
        done.stderr.split())


def test_an_output_of_another_fusion_kind_or_shared_by_two_outputs_is_refused(tmp_path):
    """A batch results file as ``--json`` or a report as a baseline's ``--out`` (before: replaced, since any file
    beginning with "{" passed as JSON), and one path for ``--json`` and ``--html`` (before: the HTML replaced the
    JSON): refused before the analysis, the files as they were."""
    results, report = tmp_path / "results.jsonl", tmp_path / "report.json"
    results.write_bytes(b'{"file":"a.flac","key":"k","status":"ok","report":{}}\n')
    report.write_bytes(b'{\n  "schema_version": "1.3",\n  "source": "a.flac"\n}\n')
    clips = [str(SAMPLE), str(SAMPLE)]
    for args, path, problem in (
            (["analyze", str(SAMPLE), "-q", "--json", str(results)], results, "the file there is not a fusion report"),
            (["baseline", *clips, "--out", str(report)], report, "the file there is not a fusion baseline"),
            (["analyze", str(SAMPLE), "-q", "--json", str(tmp_path / "both"), "--html", str(tmp_path / "both")],
             tmp_path / "both", "another output of this command goes there too")):
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and f"{path}: cannot write it: {problem}" in " ".join(result.output.split())
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_baseline_json_with_impossible_values_is_one_line_before_the_analysis(tmp_path):
    """``--gender FILE`` whose pitch is negative (before: a math domain error after the whole analysis), absurdly
    high (before: accepted, -12184 semitones and a flagship alert) or nested past the parser's depth."""
    cases = {"negative.json": '{"mean": [0.0], "std": [1.0], "pitch_hz": -100}',
             "huge.json": '{"mean": [0.0], "std": [1.0], "pitch_hz": 1e308}',
             "deep.json": "[" * 100_000 + "]" * 100_000}
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["analyze", str(SAMPLE), "-q", "--gender", str(tmp_path / name)])
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), name
        assert f"{tmp_path / name}: not a readable baseline JSON" in " ".join(result.output.split()), result.output


def test_an_evaluation_s_data_file_that_is_no_regular_file_is_refused_without_waiting_on_it(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.csv")
    done = subprocess.run([sys.executable, "-m", "fusion.cli", "eval", "text", str(tmp_path / "pipe.csv"), "-q"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and f"{tmp_path / 'pipe.csv'}: not a regular file" in " ".join(done.stderr.split())
