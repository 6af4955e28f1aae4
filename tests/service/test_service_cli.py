"""``fusion serve`` and its user commands (fusion/cli/serve.py) through the real command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from service_config import service_toml
from typer.testing import CliRunner

from fusion.cli import app as cli_app
from fusion.cli.serve import STACK
from fusion.config import load_config
from fusion.service.app import create_app

ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgresql://diary:s3cret-pw@db.example.org/fusion"


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from fusion.cli import app; app()", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("command", ["add-user", "rotate-token", "remove-user"])
@pytest.mark.parametrize("module", list(STACK))
def test_a_missing_service_package_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch, module, command):
    """The packages are installed here, so their absence is simulated: ``None`` in ``sys.modules`` makes
    ``import`` fail exactly as it does where the package is missing."""
    monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(cli_app, ["serve", "--config", str(service_toml(tmp_path)), command, "alice"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.output.strip().count("\n") == 0
    assert STACK[module] in result.output and "pip install 'fusion[serve]'" in result.output


def test_serve_without_uvicorn_exits_with_the_extra_and_no_traceback(tmp_path):
    """uvicorn is installed here; a ``None`` in ``sys.modules`` stands in for its absence."""
    code = "import sys; sys.modules['uvicorn'] = None; from fusion.cli import app; app()"
    result = subprocess.run([sys.executable, "-c", code, "serve", "--config", str(service_toml(tmp_path))],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the HTTP service needs uvicorn, which is not installed: "
                                     "pip install 'fusion[serve]'")


def test_an_unusable_database_url_is_one_line_naming_it_without_its_password(tmp_path):
    result = _cli("serve", "--config", str(service_toml(tmp_path, database_url=f'"{PG_URL}"')))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "postgresql://diary:***@db.example.org/fusion" in result.stderr and "s3cret-pw" not in result.stderr
    added = CliRunner().invoke(cli_app, ["serve", "add-user", "alice",
                                         "--config", str(service_toml(tmp_path, database_url=f'"{PG_URL}"'))])
    assert (added.exit_code == 2
            and "cannot open the database postgresql://diary:***@db.example.org/fusion" in added.output)


def test_a_static_user_s_token_is_changed_in_the_config_not_rotated(tmp_path):
    config = service_toml(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace("[server.tokens]\n",
                                                                 '[server.tokens]\ncarol = "c-token"\n'),
                      encoding="utf-8")
    with TestClient(create_app(load_config(config))):
        pass  # the service's start makes the config's users
    result = CliRunner().invoke(cli_app, ["serve", "rotate-token", "carol", "--config", str(config)])
    assert result.exit_code == 2 and "static token from [server.tokens]: change it there" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_listens_where_the_config_says(tmp_path):
    port = _free_port()
    config = service_toml(tmp_path, host='"127.0.0.1"', port=str(port))
    server = subprocess.Popen([sys.executable, "-m", "fusion.cli", "serve", "--config", str(config)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("name", ["", "a" * 300])
def test_add_user_refuses_a_name_that_is_empty_or_too_long(tmp_path, name):
    result = CliRunner().invoke(cli_app, ["serve", "add-user", name, "--config", str(service_toml(tmp_path))])
    assert result.exit_code == 2 and "a user name is 1 to 100 printable characters" in result.output
    assert result.stdout.count("\n") <= 2, "no token printed"


@pytest.mark.slow
def test_a_storage_dir_that_is_a_file_is_one_line_for_every_command(tmp_path):
    (tmp_path / "store").write_text("not a folder")
    config = str(service_toml(tmp_path))
    for args in (["serve", "--config", config], ["serve", "add-user", "alice", "--config", config],
                 ["serve", "remove-user", "alice", "--config", config]):
        result = _cli(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert result.stderr.strip().count("\n") == 0 and "storage_dir" in result.stderr, (args, result.stderr)


def test_add_user_refuses_a_name_the_config_gives_a_static_token(tmp_path):
    """Before: created, and its printed token stopped working at the next start, when [server.tokens] took the name."""
    config = service_toml(tmp_path, tokens='carol = "c-token-from-the-config"\n')
    result = CliRunner().invoke(cli_app, ["serve", "add-user", "carol", "--config", str(config)])
    assert result.exit_code == 2 and "user carol is named in [server.tokens]" in " ".join(result.output.split())
    assert result.stdout.count("\n") <= 2, "no token printed"


def test_a_port_out_of_range_is_a_usage_error_and_a_failed_start_s_mark_is_swept(tmp_path):
    """``--port 99999``: a usage error before anything starts (before: a traceback from bind after startup, which
    left the process's mark in workers/); a mark a gone process left is removed by the next start."""
    config = service_toml(tmp_path)
    result = CliRunner().invoke(cli_app, ["serve", "--port", "99999", "--config", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    with TestClient(create_app(load_config(config))):
        pass
    marks = tmp_path / "store" / "workers"
    (marks / "gone-process").write_bytes(b"")
    (marks / "a-folder").mkdir()  # no mark: left alone (before: its start failed on it)
    with TestClient(create_app(load_config(config))) as client:
        live = [p.name for p in marks.iterdir()]
        assert sorted(live) == sorted(["a-folder", client.app.state.workers.name]), "its own mark, and the folder"
