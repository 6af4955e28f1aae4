"""``python -m fusion.cli``: the same as the ``fusion`` command."""

from fusion.cli import app

app()
