"""``fusion eval``: each command a thin shell over one module of fusion/eval/."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion.console import config_from, fail, key_values, write_output
from fusion.errors import FusionError
from fusion.files import check_output

eval_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Measure the text, voice and speech-to-text models, and the alerts, on a labelled CSV.")
_SPLIT = typer.Option(None, "--split", help="only rows whose 'split' column is this (train, dev, test)")
_EVAL_JSON = typer.Option(None, "--json", help="write the full result as JSON here ('-' for stdout)")
_EVAL_CONFIG = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml")
_EVAL_QUIET = typer.Option(False, "--quiet", "-q", help="no progress bar")
_DEGRADE = typer.Option(None, "--degrade", help="comma-separated recording conditions, each evaluated apart: clean, "
                                                "opus16, aac32, amr, pink15, babble5, near, far, gain-25, or steps "
                                                "joined by + (near+opus16); see fusion.degrade")
_SEED = typer.Option(0, "--seed", help="the seed of the --degrade noise and rooms")


def _under(evaluate, data: Path, degrade: str | None, split: str | None, seed: int, config: Path | None,
           quiet: bool):
    """``evaluate(csv)`` on ``data``, or on each ``--degrade`` condition of it."""
    if degrade is None:
        return lambda: evaluate(data)

    def run():
        from fusion.degrade import parse_conditions
        from fusion.eval.conditions import under_conditions

        return under_conditions(evaluate, data, parse_conditions(degrade), split, seed, config_from(config),
                                progress=not quiet)
    return run


def _eval_output(run, json_out: Path | None, summarise=None) -> None:
    import json

    from fusion.eval.text import summary

    summarise = summarise or summary
    try:
        check_output(json_out, "json")
        result = run()
    except (FusionError, ValueError) as exc:
        fail(exc)
    if json_out is not None:
        write_output(json_out, json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    if str(json_out) != "-":
        typer.echo(summarise(result))


@eval_app.command("text")
def eval_text_cmd(
    data: Path = typer.Argument(..., help="CSV with columns text,label"),
    model: str | None = typer.Option(None, "--model", help="text model directory (default: the configured one)"),
    stt: bool = typer.Option(False, "--stt-style", help="the texts as speech-to-text writes them: punctuation "
                                                       "removed, a third of the spaces dropped, a few added"),
    split: str | None = _SPLIT, json_out: Path | None = _EVAL_JSON,
    config: Path | None = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """Accuracy, macro-F1, per-label scores and confusion matrix of the text model."""
    from fusion.eval.text import eval_text

    _eval_output(lambda: eval_text(data, model, split, config_from(config), progress=not quiet, stt=stt), json_out)


@eval_app.command("audio")
def eval_audio_cmd(
    data: Path = typer.Argument(..., help="CSV with columns path,label[,speaker,gender]"),
    model: str | None = typer.Option(None, "--model",
                                     help="audio model directory or weights (default: the configured one)"),
    baseline_mode: str | None = typer.Option(
        None, "--baseline-mode", help="reference (default: the row's gender, else by pitch), personal (per speaker "
                                      "from their neutral rows, not scored) or auto (per clip from its speaker's "
                                      "other rows, any label, as the service's personal-auto baseline)"),
    personal_baseline: bool = typer.Option(False, "--personal-baseline", help="the same as --baseline-mode personal"),
    degrade: str | None = _DEGRADE, seed: int = _SEED,
    split: str | None = _SPLIT, json_out: Path | None = _EVAL_JSON,
    config: Path | None = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """Accuracy, macro-F1, UAR, per-label scores and confusion matrix of the voice model; lexically balanced rows apart.
    """
    from fusion.eval.conditions import audio_summary
    from fusion.eval.voice import eval_audio

    def evaluate(csv_path: Path) -> dict:
        return eval_audio(csv_path, model, split, personal_baseline, config_from(config), progress=not quiet,
                          baseline_mode=baseline_mode)

    _eval_output(_under(evaluate, data, degrade, split, seed, config, quiet), json_out,
                 audio_summary if degrade else None)


@eval_app.command("leakage")
def eval_leakage_cmd(
    data: Path = typer.Argument(Path("evalsets/leakage/sentences.csv"),
                                help="CSV with columns text,kind (kind: happy or sad)"),
    model: str | None = typer.Option(None, "--model", help="audio model directory (default: the configured one)"),
    json_out: Path | None = _EVAL_JSON, config: Path | None = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """How much the words alone move the voice model: P(SAD) of sad minus happy sentences in one synthetic voice."""
    from fusion.eval.voice import eval_leakage, leakage_summary

    _eval_output(lambda: eval_leakage(data, model, config_from(config), progress=not quiet), json_out, leakage_summary)


@eval_app.command("stt")
def eval_stt_cmd(
    data: Path = typer.Argument(..., help="CSV with columns path,transcript"),
    engine: str | None = typer.Option(None, "--engine", help="faster-whisper or openai-whisper"),
    model: str | None = typer.Option(None, "--model", help="STT model (default: the configured one)"),
    settings: list[str] = typer.Option([], "--set", help="override a field of the config's stt section, "
                                                         "e.g. --set beam_size=1 --set vad_filter=false"),
    split: str | None = _SPLIT, json_out: Path | None = _EVAL_JSON,
    config: Path | None = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """CER, WER (punctuation and spacing normalised) and real-time factor of speech to text."""
    from fusion.eval.text import eval_stt

    extra = key_values(settings)
    _eval_output(lambda: eval_stt(data, engine, model, split, config_from(config), progress=not quiet, **extra),
                 json_out)


@eval_app.command("diaries")
def eval_diaries_cmd(
    data: Path = typer.Argument(Path("evalsets/diaries/test.jsonl"), help="diaries as JSON Lines "
                                "(evalsets/diaries/make_set.py writes dev.jsonl and test.jsonl)"),
    source: str | None = typer.Option(None, "--source", help="only the diaries of this source (composed, written)"),
    json_out: Path | None = _EVAL_JSON,
    config: Path | None = _EVAL_CONFIG,
) -> None:
    """The words half on diaries: sentence macro-F1, diary polarity, and the split of unpunctuated text."""
    from fusion.eval.diaries import eval_diaries, summary

    _eval_output(lambda: eval_diaries(data, config_from(config), source), json_out, summary)


@eval_app.command("alerts")
def eval_alerts_cmd(
    data: Path = typer.Argument(..., help="CSV with columns path,transcript,expected[,baseline,group,speaker,sources]"),
    baseline_mode: str | None = typer.Option(
        None, "--baseline-mode", help="instead of each row's baseline column: reference (male/female by pitch) or auto "
                                      "(per row from its speaker's other rows, as the service's personal-auto "
                                      "baseline; needs a speaker column)"),
    degrade: str | None = _DEGRADE, seed: int = _SEED,
    split: str | None = _SPLIT, json_out: Path | None = _EVAL_JSON,
    config: Path | None = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """Recall and false-alarm rate per alert kind of the whole pipeline (transcripts given, no speech-to-text)."""
    from fusion.alerts import FLAGSHIP
    from fusion.eval.alerts import eval_alerts, summary
    from fusion.eval.conditions import alerts_summary

    def evaluate(csv_path: Path) -> dict:
        return eval_alerts(csv_path, config_from(config), split, progress=not quiet, baseline_mode=baseline_mode)

    _eval_output(_under(evaluate, data, degrade, split, seed, config, quiet), json_out,
                 (lambda r: alerts_summary(r, FLAGSHIP)) if degrade else summary)

