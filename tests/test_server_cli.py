"""``chute server`` as a real process, driven through chute.server.client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

pytest_plugins = ["tests.fixtures.server"]

from tests.fixtures.server import PIPELINE_YAML, free_port


def _start(port: int, env: dict, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chute.cli.app", "server", "--port", str(port),
         "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    started = threading.Event()

    def read():  # a thread: select() would miss lines already buffered by readline()
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("chute server on"):
                started.set()
        started.set()

    threading.Thread(target=read, daemon=True).start()
    assert started.wait(60), lines
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, lines
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not come up:\n" + "\n".join(lines))


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


@pytest.fixture
def server_env(chute_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env["CHUTE_HOME"] = str(chute_home)
    return env


def test_server_prints_token_once_and_client_runs_a_workflow(server_env):
    from chute.server.client import ServerClient

    port = free_port()
    proc, lines = _start(port, server_env)
    try:
        token_lines = [ln.strip() for ln in lines if ln.startswith("    ")]
        assert len(token_lines) == 1, lines
        token = token_lines[0]
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/api/v1/runs").status_code == 401
        with ServerClient(url, token) as client:
            run = client.submit(yaml=PIPELINE_YAML, parameters={"message": "via-client"})
            name = run["metadata"]["name"]
            for _ in range(300):
                doc = client.get_run(name)
                if doc["status"]["phase"] not in ("Pending", "Running"):
                    break
                time.sleep(0.2)
            assert doc["status"]["phase"] == "Succeeded"
            assert "first: via-client" in list(client.logs(name))
            assert [r["name"] for r in client.list_runs(phase="Succeeded")] == [name]
            from chute.errors import NotFoundError

            with pytest.raises(NotFoundError):
                client.get_run("nope")
        with ServerClient(url, "wrong") as bad:
            from chute.errors import UserError

            with pytest.raises(UserError, match="refused the token"):
                bad.list_runs()
    finally:
        assert _stop(proc) in (0, -signal.SIGINT)
    proc2, lines2 = _start(port, server_env)
    try:
        assert not any(ln.startswith("    ") for ln in lines2), lines2  # printed only once
        resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs",
                         headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200 and resp.json()["total"] == 1
    finally:
        _stop(proc2)
    proc3, lines3 = _start(port, server_env, "--new-token", "--no-controller")
    try:
        fresh = [ln.strip() for ln in lines3 if ln.startswith("    ")]
        assert len(fresh) == 1 and fresh[0] != token
        url = f"http://127.0.0.1:{port}/api/v1/runs"
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
        ok = httpx.get(url, headers={"Authorization": f"Bearer {fresh[0]}"})
        assert ok.status_code == 200
    finally:
        _stop(proc3)


def test_client_from_settings_needs_a_server_url(chute_home):
    from chute.config import load_settings
    from chute.server.client import client_from_settings

    assert client_from_settings(load_settings({"CHUTE_HOME": str(chute_home)})) is None
    c = client_from_settings(load_settings({"CHUTE_HOME": str(chute_home),
                                            "CHUTE_SERVER": "http://127.0.0.1:1",
                                            "CHUTE_TOKEN": "t"}))
    assert c is not None and c.http.headers["authorization"] == "Bearer t"
    c.close()
