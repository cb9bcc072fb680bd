"""The production entry point: gunicorn with gunicorn.conf.py and production settings."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.ops.procs import BASE_DIR, production_env, run_manage, wait_for_server


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str, host: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    """One GET without following redirects."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    port = _free_port()
    env = production_env(
        tmp_path,
        PORT=str(port),
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        CACHE_URL=os.environ.get("CACHE_URL", ""),
    )
    # As the Docker image does at build time: production pages need the static manifest.
    collected = run_manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "tinko.wsgi:application"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_server(lambda: _get(port, "/healthz", "tinko.example.com"), process=process, log_path=log_path, what="gunicorn")
        yield {"port": port, "env": env, "log": log_path}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_gunicorn_serves_probes_over_plain_http_in_production(gunicorn_server):
    port = gunicorn_server["port"]
    status, body, _ = _get(port, "/healthz", "tinko.example.com")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body, _ = _get(port, "/readyz", "tinko.example.com")
    assert status == 200, body
    # Everything else is redirected to HTTPS.
    status, _, headers = _get(port, "/accounts/login/", "tinko.example.com")
    assert status == 301
    assert headers["Location"] == "https://tinko.example.com/accounts/login/"


def test_probes_still_validate_the_host_header(gunicorn_server):
    status, _, _ = _get(gunicorn_server["port"], "/healthz", "localhost")
    assert status == 400


def test_compose_web_healthcheck_passes_against_gunicorn(gunicorn_server):
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    command = compose["services"]["web"]["healthcheck"]["test"]
    assert command[:2] == ["CMD", "python"]
    env = dict(gunicorn_server["env"], ALLOWED_HOSTS="tinko.example.com,www.tinko.example.com")
    result = subprocess.run([sys.executable, *command[2:]], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_gunicorn_writes_json_logs_with_the_request_id(gunicorn_server):
    port = gunicorn_server["port"]
    # As the TLS-terminating proxy forwards it.
    status, _, _ = _get(
        port, "/no-such-page/?secret=hunter2", "tinko.example.com", {"X-Request-ID": "gunicorn-42", "X-Forwarded-Proto": "https"}
    )
    assert status == 404
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in gunicorn_server["log"].read_text().splitlines() if line.startswith("{")]
        access = [line for line in lines if line.get("logger") == "tinko.access" and line.get("request_id") == "gunicorn-42"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert access, gunicorn_server["log"].read_text()
    assert access[0]["path"] == "/no-such-page/"
    assert access[0]["status"] == 404
    # gunicorn's own messages are JSON too.
    assert any(line.get("logger") == "gunicorn.error" for line in lines)
    assert "hunter2" not in gunicorn_server["log"].read_text()


def test_a_worker_loads_the_views_and_freezes_its_startup_objects(tmp_path):
    # gunicorn.conf.py's post_worker_init: the views are imported before the first request, and what
    # start-up made is left out of later garbage collections (a batch would walk it again and again).
    from tests.ops.procs import run_python

    code = (
        "import gc, sys\n"
        "import tinko.wsgi\n"
        "before = gc.get_freeze_count()\n"
        "views_before = 'recovery.api.views' in sys.modules\n"
        "tinko.wsgi.freeze_startup_objects()\n"
        "print(before, views_before, 'recovery.api.views' in sys.modules, gc.get_freeze_count() > 50_000)\n"
    )
    done = run_python(code, production_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 False True True"
    assert "def post_worker_init(worker):" in (BASE_DIR / "gunicorn.conf.py").read_text()


ARENAS = (
    "import ctypes, ctypes.util, os, sys, tempfile, threading\n"
    "import tinko.wsgi\n"
    "shared = tinko.wsgi.share_one_malloc_arena() if sys.argv[1] == 'share' else None\n"
    "blocks = []\n"
    "def work():\n"
    "    blocks.extend(bytearray(50_000) for _ in range(20))\n"
    "threads = [threading.Thread(target=work) for _ in range(4)]\n"
    "[t.start() for t in threads]; [t.join() for t in threads]\n"
    "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
    "libc.fopen.restype = ctypes.c_void_p\n"
    "path = tempfile.mktemp()\n"
    "f = libc.fopen(path.encode(), b'w'); libc.malloc_info(0, ctypes.c_void_p(f)); libc.fclose(ctypes.c_void_p(f))\n"
    "print(shared, open(path).read().count('<heap nr='))\n"
)


def test_a_workers_threads_share_one_malloc_arena(tmp_path):
    # Each request thread with an arena of its own kept a batch's worth of freed memory in it.
    import subprocess

    from tests.ops.procs import BASE_DIR as base

    def heaps(mode: str) -> str:
        # With Redis, as in production: local mode would start its background threads (and their arenas) on import.
        env = production_env(tmp_path, REDIS_URL=os.environ.get("REDIS_URL", ""), CACHE_URL=os.environ.get("CACHE_URL", ""))
        done = subprocess.run([sys.executable, "-c", ARENAS, mode], cwd=base, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    shared, own = heaps("share"), heaps("own")
    assert shared == "True 1"
    assert own.startswith("None ") and int(own.split()[1]) > 1  # without it, threads get arenas of their own
    assert "share_one_malloc_arena()" in (BASE_DIR / "gunicorn.conf.py").read_text()
