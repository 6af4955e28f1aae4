"""A configuration file for a service under test: configs/default.toml with its storage in a test folder."""

from __future__ import annotations

import re
from pathlib import Path

from fusion.config import default_config_path


def service_toml(tmp_path: Path, tokens: str = "", **server: str) -> Path:
    """configs/default.toml with its storage in ``tmp_path``, these ``[server]`` values (TOML literals) and these
    ``[server.tokens]`` lines, for the app and the command line alike."""
    before, section, toml = default_config_path().read_text(encoding="utf-8").partition("\n[server]\n")
    for key, value in {"storage_dir": f'"{tmp_path / "store"}"', **server}.items():  # the first after [server]
        toml, found = re.subn(rf"(?m)^{key} = .*$", lambda _, key=key, value=value: f"{key} = {value}", toml, count=1)
        assert found, key
    toml = before + section + toml
    path = tmp_path / "config.toml"
    path.write_text(toml.replace("[server.tokens]\n", f"[server.tokens]\n{tokens}"), encoding="utf-8")
    return path
