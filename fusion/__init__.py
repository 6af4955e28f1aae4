"""fusion: one spoken diary in, one honest emotional report out.

>>> from fusion import analyze
>>> report = analyze("diary.wav")          # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["analyze", "analyze_many", "__version__"]


def __getattr__(name: str):
    # The pipeline pulls in torch, whisper and kiwi; import it only when asked for.
    if name == "analyze":
        from fusion.pipeline import analyze

        return analyze
    if name == "analyze_many":
        from fusion.batch import analyze_many

        return analyze_many
    raise AttributeError(name)
