"""The ``portmesh`` command: refusing to run without auth, config loading, request logs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from node.config import ConfigError, load_config
from portmesh.cli import main
from support.servers import run_node


def test_node_refuses_to_start_without_auth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["node", "--listen", "127.0.0.1:0", "--data", str(tmp_path)]) == 2
    assert "--no-auth" in capsys.readouterr().err
    assert not (tmp_path / "meta").exists(), "nothing may be opened before refusing"


def test_bad_listen_address_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["node", "--listen", "nowhere", "--data", str(tmp_path), "--no-auth"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_config_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nlisten = "0.0.0.0:6000"\nworkers = 3\nchunk_min_length = 4096\n')
    config = load_config(path, workers=2, data=tmp_path / "d")
    assert config.listen == "0.0.0.0:6000"
    assert config.workers == 2  # the flag wins
    assert config.chunk_min_length == 4096
    assert config.data == tmp_path / "d"


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[node]\nlisten_port = 5000\n")
    with pytest.raises(ConfigError, match="listen_port"):
        load_config(path)


def test_broken_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[node\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(path)


def _access_lines(log: Path, path: str) -> list[dict[str, object]]:
    entries = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return [x for x in entries if x.get("path") == path]


async def test_one_json_log_line_per_request(tmp_path: Path) -> None:
    path = "/v2/no/such/manifests/latest"
    async with run_node(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/v2/")).status_code == 200
            assert (await client.get(path)).status_code == 404
        # The line is written once the response has gone out, so it may trail it a little.
        for _ in range(200):
            await trio.sleep(0.05)
            if _access_lines(server.log, path):
                break
        await trio.sleep(0.2)
        lines = _access_lines(server.log, path)
    assert len(lines) == 1
    assert lines[0]["status"] == 404
    assert lines[0]["route"] == "manifest"
    assert lines[0]["method"] == "GET"
    assert isinstance(lines[0]["ms"], float)
