"""``portmesh coordinator`` as a real process: first start creates ``admin`` with a
generated password printed once to stderr; a restart keeps the account and prints
nothing; ``--database`` selects PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from support.servers import free_port, portmesh_command

START_TIMEOUT = 30.0


async def _run_once(data: Path, log: Path, *extra: str, env: dict[str, str]) -> str:
    """Start the coordinator, wait for ``/ping``, check that ``admin`` signs in with the
    printed (or environment) password, stop it with SIGTERM; its output."""
    port = free_port()
    command = [*portmesh_command(), "coordinator", "--listen", f"127.0.0.1:{port}"]
    command += ["--data", str(data), *extra]
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            with trio.fail_after(START_TIMEOUT):
                while True:
                    if process.returncode is not None:
                        pytest.fail(
                            f"coordinator exited early:\n{await trio.Path(log).read_text()}"
                        )
                    try:
                        response = await client.get(f"http://127.0.0.1:{port}/api/v2.0/ping")
                        if response.text == "Pong":
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.1)
            text = await trio.Path(log).read_text()
            match = re.search(r"with password (\S+)", text)
            password = match.group(1) if match else env.get("PORTMESH_ADMIN_PASSWORD", "")
            me = await client.get(
                f"http://127.0.0.1:{port}/api/v2.0/users/current", auth=("admin", password)
            )
            assert me.status_code == 200
            assert (me.json()["user_id"], me.json()["sysadmin_flag"]) == (1, True)
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            await process.wait()
    text = await trio.Path(log).read_text()
    assert process.returncode == 0, text
    return text


async def test_generated_admin_password_is_printed_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORTMESH_ADMIN_PASSWORD"}
    first = await _run_once(tmp_path / "data", tmp_path / "first.log", env=env)
    printed = re.findall(r"with password (\S+)", first)
    assert len(printed) == 1
    assert (tmp_path / "data" / "coordinator.db").exists()
    # On the next start the account exists: nothing printed; the old password still works.
    env["PORTMESH_ADMIN_PASSWORD"] = printed[0]
    second = await _run_once(tmp_path / "data", tmp_path / "second.log", env=env)
    assert "with password" not in second and printed[0] not in second


async def test_env_password_and_postgresql(tmp_path: Path, pg_url: str) -> None:
    env = {**os.environ, "PORTMESH_ADMIN_PASSWORD": "FromTheEnv123"}
    text = await _run_once(tmp_path / "data", tmp_path / "pg.log", "--database", pg_url, env=env)
    assert "FromTheEnv123" not in text
    assert not (tmp_path / "data" / "coordinator.db").exists()
