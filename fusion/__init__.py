"""fusion: one spoken diary in, one honest emotional report out.

>>> from fusion import analyze
>>> report = analyze("diary.wav")          # doctest: +SKIP

The names below are the public API. They are imported on first use: the pipeline pulls in
torch, Whisper and kiwi, which ``import fusion`` alone should not pay for.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fusion")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_PUBLIC = {
    "analyze": "fusion.pipeline",
    "analyze_many": "fusion.batch",
    "Pipeline": "fusion.pipeline",
    "DiaryReport": "fusion.report",
    "load_config": "fusion.config",
    "FusionError": "fusion.errors",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'fusion' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
