"""``fusion`` on the command line: one shell over the Python API, one module a command group.

``main``: analyze, baseline, batch, history; ``eval``: ``fusion eval …``; ``train``: ``fusion train …``;
``serve``: ``fusion serve`` and its user commands. Each command imports what it runs when it runs, so
``fusion --help`` loads no model, no service stack and no training code.
"""

from __future__ import annotations

from fusion.cli.eval import eval_app
from fusion.cli.main import app
from fusion.cli.serve import app as serve_app
from fusion.cli.train import train_app

app.add_typer(serve_app, name="serve")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")

__all__ = ["app"]
