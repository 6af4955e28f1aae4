"""What every ``fusion`` command shares: the console on stderr, the one-line error exit and ``--config``."""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from fusion.config import Config

err = Console(stderr=True)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` for the terminal: control characters (a file name may hold an escape sequence or a line break)
    shown as their escapes instead of acted on, and rich markup shown as it is written."""
    return escape(_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text))


def fail(error: Exception | str) -> NoReturn:
    """Print ``error: ...`` on one line and exit with status 2."""
    err.print("[bold red]error:[/]", printable(str(error)), soft_wrap=True)
    raise typer.Exit(code=2)


def config_from(path: Path | None) -> Config:
    """The config in ``path``, or configs/default.toml when none is given; a bad file is a one-line error, and
    each warning of reading it (a key that is no longer a setting) a one-line warning."""
    from fusion.config import default_config, load_config
    from fusion.errors import FusionError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            config = load_config(path) if path else default_config()
        except FusionError as exc:
            fail(exc)
    for warning in caught:
        err.print("[yellow]warning:[/]", printable(str(warning.message)), soft_wrap=True)
    return config


def key_values(pairs: list[str]) -> dict:
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


def write_output(path: Path, text: str) -> None:
    """Write a command's result file whole ("-": standard output); a path that cannot be written is a one-line
    error."""
    from fusion.errors import InputError
    from fusion.files import atomic_write

    if str(path) == "-":
        sys.stdout.write(text)
        return
    try:
        atomic_write(path, text)
    except OSError as exc:
        fail(InputError(path, f"cannot write it: {exc.strerror or exc}"))
