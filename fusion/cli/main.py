"""``fusion analyze``, ``baseline``, ``batch`` and ``history``: a thin shell over the Python API."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fusion.console import config_from, err, fail, write_output
from fusion.errors import FusionError, InputError
from fusion.files import DANGLING, check_output, open_regular

# A transcript file is read up to this size: 100,000 Korean characters, four times what an hour of speech holds.
MAX_TRANSCRIPT_BYTES = 300_000

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Words and voice of a spoken diary, fused.")


@app.callback()
def main() -> None:
    """Words and voice of a spoken diary, fused."""
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name is printed as its own bytes, as ls does
        stream.reconfigure(errors="surrogateescape")
    config_from(None)  # the default (or $FUSION_CONFIG) config, checked before any module reads it


def _read_transcript(path: Path) -> str:
    """The words of a UTF-8 text file: a regular file, at most ``MAX_TRANSCRIPT_BYTES``."""
    try:
        with open_regular(path) as fh:
            data = fh.read(MAX_TRANSCRIPT_BYTES + 1)
        if len(data) > MAX_TRANSCRIPT_BYTES:
            raise InputError(path, f"the transcript is too long: more than {MAX_TRANSCRIPT_BYTES:,} bytes")
        text = data.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the transcript ({exc.__class__.__name__}: {exc})") from exc
    if not text:
        raise InputError(path, "the transcript is empty")
    return text


@app.command()
def analyze(
    recording: Path = typer.Argument(..., help="audio file: wav, flac, mp3, m4a, ogg, opus, webm …"),
    json_out: Path | None = typer.Option(None, "--json", help="write the report as JSON here ('-' for stdout)"),
    html_out: Path | None = typer.Option(None, "--html", help="write the report as one self-contained HTML page here"),
    gender: str | None = typer.Option(None, "--gender", "--baseline",
                                      help="neutral baseline: male, female or a personal baseline JSON"),
    transcript: Path | None = typer.Option(None, "--transcript",
                                           help="UTF-8 text file: skip speech-to-text and use these words"),
    config: Path | None = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no terminal report"),
) -> None:
    """Analyse one diary recording and print its report."""
    from fusion.pipeline import analyze as run
    from fusion.render import render

    cfg = config_from(config)
    inputs = [p for p in (recording, transcript, Path(gender or "")) if p and p.is_file()]
    try:
        check_output(json_out, "report", inputs)
        check_output(html_out, "html", inputs, outputs=[json_out])
        if html_out is not None:
            from fusion.html_report import save_html  # before the analysis: says at once if the extra is missing
        words = _read_transcript(transcript) if transcript else None
        report = run(recording, transcript=words, baseline=gender, config=cfg)  # as analyze(path): its time, its decode
    except FusionError as exc:
        fail(exc)
    try:
        if json_out is not None and str(json_out) == "-":
            sys.stdout.write(report.to_json() + "\n")
        elif json_out is not None:
            report.save_json(json_out)
        if html_out is not None:
            save_html(report, html_out, cfg)
    except OSError as exc:
        fail(InputError(exc.filename or json_out, f"cannot write the report: {exc.strerror or exc}"))
    if not quiet and str(json_out) != "-":
        render(report)


@app.command()
def baseline(
    recordings: list[Path] = typer.Argument(..., help="two or more recordings of your calm, neutral voice"),
    out: Path = typer.Option(..., "--out", help="where to write the personal baseline JSON"),
    name: str | None = typer.Option(None, "--name", help="a name stored in the baseline (default: the file name)"),
) -> None:
    """Build a personal neutral baseline from calm recordings (use it with --gender PATH)."""
    from fusion.audio import load_audio
    from fusion.voice.prosody import build_baseline

    try:
        check_output(out, "baseline", recordings)
        clips = [load_audio(path).samples for path in recordings]
        built = build_baseline(clips, name=name or out.stem, sources=list(map(str, recordings)))
    except FusionError as exc:
        fail(exc)
    write_output(out, built.to_json())
    err.print(f"baseline from {len(clips)} recordings written to {out}")


@app.command()
def batch(
    inputs: str = typer.Argument(..., help="a folder (recursive), a glob, or a list file (.txt: one path a line)"),
    out: Path = typer.Option(..., "--out", help="JSONL results, one line per input; a rerun resumes it"),
    csv_out: Path | None = typer.Option(None, "--csv", help="also write a one-row-per-file CSV summary here"),
    dates: Path | None = typer.Option(None, "--dates", help="CSV file,recorded_at (ISO 8601; no zone: UTC; paths "
                                                            "relative to the CSV): when each recording was made; "
                                                            "default: the file's modification time"),
    workers: int | None = typer.Option(None, "--workers",
                                       help="local worker processes (default: workers in the config's batch section)"),
    engine: str = typer.Option("local", "--engine", help="local or ray"),
    address: str | None = typer.Option(None, "--address",
                                       help="Ray cluster address ('auto' for a running one); default: a local Ray"),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="analyse again the inputs whose earlier line is an error"),
    gender: str | None = typer.Option(None, "--gender", "--baseline",
                                      help="neutral baseline for every file: male, female or a baseline JSON"),
    config: Path | None = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Analyse many recordings into a JSONL file (resumable); exit 1 if any input failed."""
    from fusion.batch import run_batch

    try:
        summary = run_batch(inputs, out, csv_path=csv_out, baseline=gender, config=config_from(config), workers=workers,
                            engine=engine, address=address, retry_failed=retry_failed, progress=not quiet,
                            dates=dates)
    except (FusionError, ValueError, OSError) as exc:
        fail(exc)
    err.print(summary.line(), soft_wrap=True)
    if summary.any_failed:
        raise typer.Exit(code=1)


@app.command()
def history(
    results: Path = typer.Argument(..., help="a fusion batch results file (JSONL)"),
    html_out: Path | None = typer.Option(None, "--html", help="write the timeline as one self-contained HTML page"),
    csv_out: Path | None = typer.Option(None, "--csv", help="write one row per diary, in date order, here"),
    title: str = typer.Option("Diaries over time", "--title", help="the page's title"),
    config: Path | None = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
) -> None:
    """A person's diaries over time, from a batch's results: weeks, words vs voice, the drift alert.

    Without --html or --csv, prints the weeks in the terminal.
    """
    from fusion.batch.results import read_results, timeline_entries
    from fusion.history import entries_csv, timeline, trend_alert, weekly

    cfg = config_from(config)
    try:
        check_output(html_out, "html", [results])
        check_output(csv_out, "csv", [results], outputs=[html_out])
        if html_out is not None:
            from fusion.history_html import render_timeline  # says at once if the report extra is missing
        if not results.is_file():
            gone = results.is_symlink() and not results.exists()
            raise InputError(results, DANGLING if gone else "no such results file")
        records = read_results(results)
        if not records and results.stat().st_size:
            raise InputError(results, "not a fusion batch results file: it holds no complete line")
        try:
            entries, errors, undated = timeline_entries(records)
        except ValueError as exc:  # a report that is no DiaryReport
            raise InputError(results, str(exc)) from exc
    except FusionError as exc:
        fail(exc)
    entries = timeline(entries, cfg.history)
    weeks, trend = weekly(entries), trend_alert(entries, cfg.history)
    if html_out is not None:
        write_output(html_out, render_timeline(entries, weeks, trend, title=title, config=cfg))
    if csv_out is not None:
        write_output(csv_out, entries_csv(entries))
    if html_out is None and csv_out is None:
        _print_weeks(weeks, trend)
    if undated:
        err.print(f"warning: {undated} report(s) without recorded_at whose file is gone: left out", soft_wrap=True)
    drift = f"yes ({trend.severity})" if trend else "no"
    err.print(f"{len(entries)} diaries in {len(weeks)} weeks; drift alert: {drift}"
              f"{f'; {errors} error record(s) skipped' if errors else ''}", soft_wrap=True)


def _print_weeks(weeks, trend) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fusion.history import describe_trend

    out = Console()
    if trend is not None:
        first, *rest = describe_trend(trend)
        out.print(f"[bold red]{escape(first)}[/]")
        for line in rest:
            out.print("  " + escape(line))
    table = Table("week", "from", "diaries", "words valence", "voice valence", "alerts (diaries)")
    for w in weeks:
        table.add_row(w.week, f"{w.start:%Y-%m-%d}", str(w.diaries),
                      *("–" if v is None else f"{v:+.2f}" for v in (w.words_valence, w.voice_valence)),
                      ", ".join(f"{k} ×{n}" for k, n in w.alerts.items()) or "–")
    out.print(table)
