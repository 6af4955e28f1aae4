"""``fusion`` on the command line: a thin shell over the Python API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from fusion.errors import FusionError, InputError
from fusion.train.cli import train_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Words and voice of a spoken diary, fused.")
err = Console(stderr=True)


def _fail(error: Exception) -> None:
    err.print("[bold red]error:[/]", escape(str(error)), soft_wrap=True)
    raise typer.Exit(code=2)


def _config(path: Optional[Path]):
    from fusion.config import default_config, load_config

    return load_config(path) if path else default_config()


def _read_transcript(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the transcript ({exc.__class__.__name__}: {exc})") from exc
    if not text:
        raise InputError(path, "the transcript is empty")
    return text


@app.command()
def analyze(
    recording: Path = typer.Argument(..., help="audio file: wav, flac, mp3, m4a, ogg, opus, webm …"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the report as JSON here ('-' for stdout)"),
    html_out: Optional[Path] = typer.Option(None, "--html", help="write the report as one self-contained HTML page here"),
    gender: Optional[str] = typer.Option(None, "--gender", "--baseline", help="neutral baseline: male, female or a personal baseline JSON"),
    transcript: Optional[Path] = typer.Option(None, "--transcript", help="UTF-8 text file: skip speech-to-text and use these words"),
    config: Optional[Path] = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no terminal report"),
) -> None:
    """Analyse one diary recording and print its report."""
    from fusion.audio import load_audio
    from fusion.pipeline import analyze as run
    from fusion.render import render

    cfg = _config(config)
    try:
        for out in (json_out, html_out):
            _check_writable(out)
        words = _read_transcript(transcript) if transcript else None
        audio = load_audio(recording, cfg.audio_input.sample_rate, max_duration_s=cfg.audio_input.max_duration_s)
        report = run(audio, transcript=words, baseline=gender, config=cfg)
    except FusionError as exc:
        _fail(exc)
    try:
        if json_out is not None and str(json_out) == "-":
            sys.stdout.write(report.to_json() + "\n")
        elif json_out is not None:
            report.save_json(json_out)
        if html_out is not None:
            from fusion.html_report import save_html

            save_html(report, html_out, cfg)
    except OSError as exc:
        _fail(InputError(exc.filename or json_out, f"cannot write the report: {exc.strerror or exc}"))
    if not quiet and str(json_out) != "-":
        render(report)


def _check_writable(path: Optional[Path]) -> None:
    """Refuse an output path that cannot be written before the analysis runs, not after."""
    if path is None or str(path) == "-":
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(path, "cannot write the report: it is a directory")
    if not folder.is_dir():
        raise InputError(path, f"cannot write the report: the folder {folder} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise InputError(path, "cannot write the report: permission denied")


@app.command()
def baseline(
    recordings: list[Path] = typer.Argument(..., help="two or more recordings of your calm, neutral voice"),
    out: Path = typer.Option(..., "--out", help="where to write the personal baseline JSON"),
    name: Optional[str] = typer.Option(None, "--name", help="a name stored in the baseline (default: the file name)"),
) -> None:
    """Build a personal neutral baseline from calm recordings (use it with --gender PATH)."""
    from fusion.audio import load_audio
    from fusion.prosody import build_baseline

    try:
        clips = [load_audio(path).samples for path in recordings]
        built = build_baseline(clips, name=name or out.stem)
    except FusionError as exc:
        _fail(exc)
    built.save_json(out)
    err.print(f"baseline from {len(clips)} recordings written to {out}")


@app.command()
def batch(
    inputs: str = typer.Argument(..., help="a folder (recursive), a glob, or a list file (.txt: one path a line)"),
    out: Path = typer.Option(..., "--out", help="JSONL results, one line per input; a rerun resumes it"),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="also write a one-row-per-file CSV summary here"),
    workers: Optional[int] = typer.Option(None, "--workers", help="local worker processes (default: workers in the config's batch section)"),
    engine: str = typer.Option("local", "--engine", help="local or ray"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address ('auto' for a running one); default: a local Ray"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="analyse again the inputs whose earlier line is an error"),
    gender: Optional[str] = typer.Option(None, "--gender", "--baseline", help="neutral baseline for every file: male, female or a baseline JSON"),
    config: Optional[Path] = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Analyse many recordings into a JSONL file (resumable); exit 1 if any input failed."""
    from fusion.batch import run_batch

    try:
        summary = run_batch(inputs, out, csv_path=csv_out, baseline=gender, config=_config(config), workers=workers,
                            engine=engine, address=address, retry_failed=retry_failed, progress=not quiet)
    except (FusionError, ValueError, OSError) as exc:
        _fail(exc)
    err.print(summary.line(), soft_wrap=True)
    if summary.any_failed:
        raise typer.Exit(code=1)


serve_app = typer.Typer(add_completion=False, help="The HTTP service for app backends (see /docs when it runs).")
app.add_typer(serve_app, name="serve")


@serve_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", help="port to listen on"),
    config: Optional[Path] = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
) -> None:
    """Run the service (uploads → queued analyses → JSON and HTML reports)."""
    ctx.obj = config
    if ctx.invoked_subcommand is None:
        from fusion.service.app import serve as run

        run(_config(config), host=host, port=port)


_SERVE_CONFIG = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml (also accepted before the sub-command)")


def _store(ctx: typer.Context, config: Optional[Path]):
    """The service's database for ``--config`` given after or before the sub-command."""
    from fusion.service.app import storage
    from fusion.service.store import Store

    server = _config(config or ctx.obj).server
    storage(server)
    return Store(server.database())


def _issue_token(ctx: typer.Context, config: Optional[Path], name: str, issue, said: str) -> None:
    """Run ``issue(store, name)``, print the token it returns once, then ``said``."""
    store = _store(ctx, config)
    try:
        token = issue(store, name)
    except ValueError as exc:
        _fail(exc)
    finally:
        store.close()
    sys.stdout.write(token + "\n")
    err.print(f"user {escape(name)}: {said}")


@serve_app.command("add-user")
def add_user(ctx: typer.Context, name: str = typer.Argument(..., help="the user's name (unique)"),
             config: Optional[Path] = _SERVE_CONFIG) -> None:
    """Create a user and print their bearer token (shown once; only its hash is stored)."""
    _issue_token(ctx, config, name, lambda store, n: store.add_user(n),
                 "created; send the token as 'Authorization: Bearer <token>'")


@serve_app.command("rotate-token")
def rotate_token(ctx: typer.Context, name: str = typer.Argument(..., help="the user whose token to replace"),
                 config: Optional[Path] = _SERVE_CONFIG) -> None:
    """Give a user a new bearer token and print it; the old one stops working at once."""
    _issue_token(ctx, config, name, lambda store, n: store.rotate_token(n),
                 "new token issued, the old one no longer works")


@serve_app.command("remove-user")
def remove_user(ctx: typer.Context, name: str = typer.Argument(..., help="the user to delete"),
                config: Optional[Path] = _SERVE_CONFIG) -> None:
    """Delete a user with all their recordings, reports and analyses, and say what was removed."""
    from fusion.service.app import remove_user as remove

    try:
        analyses, reports, recordings = remove(_config(config or ctx.obj), name)
    except ValueError as exc:
        _fail(exc)
    err.print(f"user {escape(name)} removed with {analyses} analyses ({reports} reports) and {recordings} stored recordings")


eval_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Measure the text, voice and speech-to-text models, and the alerts, on a labelled CSV.")
app.add_typer(eval_app, name="eval")
_SPLIT = typer.Option(None, "--split", help="only rows whose 'split' column is this (train, dev, test)")
_EVAL_JSON = typer.Option(None, "--json", help="write the full result as JSON here ('-' for stdout)")
_EVAL_CONFIG = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml")
_EVAL_QUIET = typer.Option(False, "--quiet", "-q", help="no progress bar")


def _eval_output(run, json_out: Optional[Path], summarise=None) -> None:
    import json

    from fusion.evaluate import summary

    summarise = summarise or summary
    try:
        result = run()
    except (FusionError, ValueError) as exc:
        _fail(exc)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    if str(json_out) == "-":
        sys.stdout.write(text + "\n")
    else:
        if json_out is not None:
            json_out.write_text(text + "\n", encoding="utf-8")
        typer.echo(summarise(result))


def _settings(pairs: list[str]) -> dict:
    """KEY=VALUE pairs (VALUE in TOML syntax, bare words as strings) → field overrides."""
    import tomllib

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


@eval_app.command("text")
def eval_text_cmd(
    data: Path = typer.Argument(..., help="CSV with columns text,label"),
    model: Optional[str] = typer.Option(None, "--model", help="text model directory (default: the configured one)"),
    split: Optional[str] = _SPLIT, json_out: Optional[Path] = _EVAL_JSON,
    config: Optional[Path] = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """Accuracy, macro-F1, per-label scores and confusion matrix of the text model."""
    from fusion.evaluate import eval_text

    _eval_output(lambda: eval_text(data, model, split, _config(config), progress=not quiet), json_out)


@eval_app.command("audio")
def eval_audio_cmd(
    data: Path = typer.Argument(..., help="CSV with columns path,label[,speaker,gender]"),
    model: Optional[str] = typer.Option(None, "--model", help="audio model directory or weights (default: the configured one)"),
    personal_baseline: bool = typer.Option(False, "--personal-baseline", help="baseline per speaker from their neutral rows (not scored)"),
    split: Optional[str] = _SPLIT, json_out: Optional[Path] = _EVAL_JSON,
    config: Optional[Path] = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """Accuracy, macro-F1, UAR, per-label scores and confusion matrix of the voice model; lexically balanced rows apart."""
    from fusion.evaluate_voice import eval_audio

    _eval_output(lambda: eval_audio(data, model, split, personal_baseline, _config(config), progress=not quiet), json_out)


@eval_app.command("leakage")
def eval_leakage_cmd(
    data: Path = typer.Argument(Path("evalsets/leakage/sentences.csv"), help="CSV with columns text,kind (kind: happy or sad)"),
    model: Optional[str] = typer.Option(None, "--model", help="audio model directory (default: the configured one)"),
    json_out: Optional[Path] = _EVAL_JSON, config: Optional[Path] = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """How much the words alone move the voice model: P(SAD) of sad minus happy sentences in one synthetic voice."""
    from fusion.evaluate_voice import eval_leakage, leakage_summary

    _eval_output(lambda: eval_leakage(data, model, _config(config), progress=not quiet), json_out, leakage_summary)


@eval_app.command("stt")
def eval_stt_cmd(
    data: Path = typer.Argument(..., help="CSV with columns path,transcript"),
    engine: Optional[str] = typer.Option(None, "--engine", help="faster-whisper or openai-whisper"),
    model: Optional[str] = typer.Option(None, "--model", help="STT model (default: the configured one)"),
    settings: list[str] = typer.Option([], "--set", help="override a field of the config's stt section, e.g. --set beam_size=1 --set vad_filter=false"),
    split: Optional[str] = _SPLIT, json_out: Optional[Path] = _EVAL_JSON,
    config: Optional[Path] = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """CER, WER (punctuation and spacing normalised) and real-time factor of speech to text."""
    from fusion.evaluate import eval_stt

    extra = _settings(settings)
    _eval_output(lambda: eval_stt(data, engine, model, split, _config(config), progress=not quiet, **extra), json_out)


@eval_app.command("alerts")
def eval_alerts_cmd(
    data: Path = typer.Argument(..., help="CSV with columns path,transcript,expected[,baseline,group]"),
    split: Optional[str] = _SPLIT, json_out: Optional[Path] = _EVAL_JSON,
    config: Optional[Path] = _EVAL_CONFIG, quiet: bool = _EVAL_QUIET,
) -> None:
    """Recall and false-alarm rate per alert kind of the whole pipeline (transcripts given, no speech-to-text)."""
    from fusion.evaluate_alerts import eval_alerts, summary

    _eval_output(lambda: eval_alerts(data, _config(config), split, progress=not quiet), json_out, summary)


app.add_typer(train_app, name="train")


if __name__ == "__main__":
    app()
