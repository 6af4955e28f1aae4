"""``fusion`` on the command line: a thin shell over the Python API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from fusion.errors import FusionError, InputError

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
    gender: Optional[str] = typer.Option(None, "--gender", "--baseline", help="neutral baseline: male, female or a personal baseline JSON"),
    transcript: Optional[Path] = typer.Option(None, "--transcript", help="UTF-8 text file: skip speech-to-text and use these words"),
    config: Optional[Path] = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no terminal report"),
) -> None:
    """Analyse one diary recording and print its report."""
    from fusion.pipeline import analyze as run
    from fusion.render import render

    try:
        words = _read_transcript(transcript) if transcript else None
        report = run(recording, transcript=words, baseline=gender, config=_config(config))
    except FusionError as exc:
        _fail(exc)
    if json_out is not None:
        if str(json_out) == "-":
            sys.stdout.write(report.to_json() + "\n")
        else:
            report.save_json(json_out)
    if not quiet and str(json_out) != "-":
        render(report)


@app.command()
def baseline(
    recordings: list[Path] = typer.Argument(..., help="two or more recordings of your calm, neutral voice"),
    out: Path = typer.Option(..., "--out", help="where to write the personal baseline JSON"),
    name: Optional[str] = typer.Option(None, "--name", help="a name stored in the baseline (default: the file name)"),
) -> None:
    """Build a personal neutral baseline from calm recordings (use it with --gender PATH)."""
    from fusion.audio import load_audio
    from fusion.audio_branch import build_baseline

    try:
        clips = [load_audio(path).samples for path in recordings]
        built = build_baseline(clips, name=name or out.stem)
    except FusionError as exc:
        _fail(exc)
    built.save_json(out)
    err.print(f"baseline from {len(clips)} recordings written to {out}")


if __name__ == "__main__":
    app()
