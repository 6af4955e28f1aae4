"""``fusion serve`` and its user commands, mounted by ``fusion.cli``.

The service's packages (the ``serve`` extra) are imported only when one of these commands runs, so the rest
of the command line works without them, and a missing one is a one-line error naming the extra.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer
from rich.markup import escape

from fusion.console import config_from, err, fail
from fusion.errors import FusionError, MissingExtra

app = typer.Typer(add_completion=False, help="The HTTP service for app backends (see /docs when it runs).")

# Import name → distribution, for the packages `pip install 'fusion[serve]'` brings.
STACK = {"fastapi": "fastapi", "uvicorn": "uvicorn", "sqlalchemy": "sqlalchemy", "python_multipart": "python-multipart",
         "swagger_ui_bundle": "swagger-ui-bundle"}
_CONFIG = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml "
                                              "(also accepted before the sub-command)")


def require_stack() -> None:
    """Exit with a one-line error when a package of the ``serve`` extra cannot be imported."""
    for module, distribution in STACK.items():
        try:
            importlib.import_module(module)
        except ImportError:
            fail(MissingExtra(distribution, "serve", "the HTTP service"))


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="address to listen on (default: \\[server] host)"),
    port: int | None = typer.Option(None, "--port", min=0, max=65535,
                                    help="port to listen on (default: \\[server] port)"),
    config: Path | None = typer.Option(None, "--config", help="a TOML file in the shape of configs/default.toml"),
) -> None:
    """Run the service (uploads → queued analyses → JSON and HTML reports)."""
    require_stack()
    ctx.obj = config
    if ctx.invoked_subcommand is None:
        from fusion.service.app import serve as run

        listen = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
        try:
            run(config_from(config).with_updates(server=listen))
        except FusionError as exc:
            fail(exc)


def _store(ctx: typer.Context, config: Path | None):
    """The service's database for ``--config`` given after or before the sub-command."""
    from fusion.service.app import storage
    from fusion.service.store import Store

    server = config_from(config or ctx.obj).server
    try:
        storage(server)
        return Store(server.database())
    except FusionError as exc:
        fail(exc)


def _issue_token(ctx: typer.Context, config: Path | None, name: str, issue, said: str) -> None:
    """Run ``issue(store, name)``, print the token it returns once, then ``said``."""
    store = _store(ctx, config)
    try:
        token = issue(store, name)
    except ValueError as exc:
        fail(exc)
    finally:
        store.close()
    sys.stdout.write(token + "\n")
    err.print(f"user {escape(name)}: {said}")


@app.command("add-user")
def add_user(ctx: typer.Context, name: str = typer.Argument(..., help="the user's name (unique)"),
             config: Path | None = _CONFIG) -> None:
    """Create a user and print their bearer token (shown once; only its hash is stored)."""
    static = config_from(config or ctx.obj).server.tokens

    def add(store, n: str) -> str:
        if n in static:  # its token follows [server.tokens] on every start
            raise ValueError(f"user {n} is named in [server.tokens] of the configuration: its token is the one there")
        return store.add_user(n)

    _issue_token(ctx, config, name, add, "created; send the token as 'Authorization: Bearer <token>'")


@app.command("rotate-token")
def rotate_token(ctx: typer.Context, name: str = typer.Argument(..., help="the user whose token to replace"),
                 config: Path | None = _CONFIG) -> None:
    """Give a user a new bearer token and print it; the old one stops working at once."""
    _issue_token(ctx, config, name, lambda store, n: store.rotate_token(n),
                 "new token issued, the old one no longer works")


@app.command("remove-user")
def remove_user(ctx: typer.Context, name: str = typer.Argument(..., help="the user to delete"),
                config: Path | None = _CONFIG) -> None:
    """Delete a user with their token and all their recordings, reports, analyses and baselines, and say what was
    removed."""
    from fusion.service.app import remove_user as remove

    try:
        analyses, reports, recordings, baselines = remove(config_from(config or ctx.obj), name)
    except (ValueError, FusionError) as exc:
        fail(exc)
    err.print(f"user {escape(name)} removed with {analyses} analyses ({reports} reports) "
              f"and {recordings} stored recordings; {baselines} baseline versions")
