"""Errors a user can act on: each names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class FusionError(Exception):
    """Base class of the errors the pipeline raises on purpose."""

    kind = "error"


class InputError(FusionError):
    """A recording (or transcript) that cannot be analysed, with the file named."""

    kind = "bad_input"

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelError(FusionError):
    """A model that cannot be found, verified or loaded."""

    kind = "model"


class MissingExtra(FusionError):
    """A feature whose optional packages are not installed; says which extra (or which install) brings them."""

    kind = "missing_extra"

    def __init__(self, package: str, extra: str | None, what: str, install: str | None = None):
        install = install or f"pip install 'fusion[{extra}]'"
        super().__init__(f"{what} needs {package}, which is not installed: {install}")


class ConfigError(FusionError, ValueError):
    """A configuration file that cannot be read or does not have the shape of ``configs/default.toml``,
    with the file and the offending keys named."""

    kind = "config"

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
