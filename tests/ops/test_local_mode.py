"""Local mode (DEBUG=true, no REDIS_URL) as `make run` starts it: which processes run the in-process worker."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.ops.procs import BASE_DIR, clean_env, run_manage, run_python, wait_for_server

STARTED = "In-process background worker started"
STOPPED = "In-process background worker stopped"


def local_env(tmp_path) -> dict[str, str]:
    return clean_env(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'local.sqlite3'}", LOG_LEVEL="INFO")


def test_wsgi_server_process_starts_the_worker_and_stops_it_at_exit(tmp_path):
    result = run_python("import tinko.wsgi", local_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(STARTED) == 1
    assert result.stderr.count(STOPPED) == 1


def test_wsgi_server_process_runs_the_scheduler_on_a_thread(tmp_path):
    env = local_env(tmp_path)
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    code = (
        "import time, tinko.wsgi\n"
        "from tinko.models import PeriodicJob\n"
        "deadline = time.monotonic() + 10\n"
        "while not PeriodicJob.objects.exists() and time.monotonic() < deadline: time.sleep(0.1)\n"
        "print(sorted(PeriodicJob.objects.values_list('name', flat=True)))\n"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("In-process scheduler started") == 1
    assert "clear_expired_sessions" in result.stdout


def test_asgi_server_process_starts_the_worker(tmp_path):
    result = run_python("import tinko.asgi", local_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(STARTED) == 1


def test_management_commands_do_not_start_the_worker(tmp_path):
    code = "import tinko.wsgi; from tinko.background import inprocess_worker; print(inprocess_worker())"
    result = run_manage("shell", "-c", code, env=local_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "None"
    assert STARTED not in result.stderr


def test_no_worker_is_started_with_the_redis_broker(tmp_path):
    env = local_env(tmp_path)
    env["REDIS_URL"] = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    result = run_python("import tinko.wsgi; from tinko.background import inprocess_worker; print(inprocess_worker())", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
    assert STARTED not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """`manage.py runserver` with the autoreloader, as `make run` starts it."""
    tmp_path = tmp_path_factory.mktemp("local")
    port = _free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
            cwd=BASE_DIR,
            env=local_env(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the reloader and its serving child
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(lambda: _get(base_url + "/healthz"), process=process, log_path=log_path, what="runserver")
        yield base_url, log_path, process.pid
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_runserver_with_autoreload_starts_exactly_one_worker_in_the_serving_child(local_server):
    _, log_path, reloader_pid = local_server
    log = log_path.read_text()
    started = [line for line in log.splitlines() if STARTED in line]
    assert len(started) == 1, log
    # The autoreloader's parent only watches files; the serving child owns the worker.
    assert f"pid {reloader_pid})" not in started[0]
    assert re.search(r"pid \d+\)", started[0])


def test_runserver_serves_static_files_in_local_mode(local_server):
    base_url, _, _ = local_server
    status, body, headers = _get(base_url + "/static/tinko/tinko.css")
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert body == (BASE_DIR / "static" / "tinko" / "tinko.css").read_bytes()


def test_local_mode_is_ready_without_redis_or_postgres(local_server):
    base_url, _, _ = local_server
    status, body, _ = _get(base_url + "/readyz")
    assert status == 200, body
    assert b'"database": "ok", "broker": "ok", "cache": "ok"' in body


def test_make_run_ignores_a_dotenv_and_exported_service_urls(tmp_path):
    """A developer's .env made for Compose, and service URLs exported in the shell, stay out of `make run`."""
    project = tmp_path / "tinko"
    shutil.copytree(
        BASE_DIR, project, symlinks=True,
        ignore=shutil.ignore_patterns(".venv", "var", ".git", ".env", "__pycache__", ".pytest_cache", "node_modules"),
    )
    # The suite's own interpreter and packages; -o below keeps make from reinstalling them.
    (project / ".venv").symlink_to(BASE_DIR / ".venv")
    unreachable = "redis://127.0.0.1:1/0"
    (project / ".env").write_text(
        f"DEBUG=false\nALLOWED_HOSTS=tinko.example.com\nREDIS_URL={unreachable}\n"
        "DATABASE_URL=postgres://tinko:password@127.0.0.1:1/tinko\n"
    )
    env = clean_env(
        REDIS_URL=unreachable,
        CACHE_URL="redis://127.0.0.1:1/1",
        DATABASE_URL="postgres://tinko:password@127.0.0.1:1/tinko",
        ALLOWED_HOSTS="tinko.example.com",
    )
    # As a developer's shell has it: no TINKO_DOTENV, so .env would be read.
    del env["TINKO_DOTENV"]
    port = _free_port()
    log_path = tmp_path / "make-run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            ["make", "-o", ".venv/.installed-runtime", "run", f"PORT={port}"],
            cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        status, body, _ = wait_for_server(
            lambda: _get(base_url + "/accounts/login/"), process=process, log_path=log_path, what="make run", timeout=120
        )
        assert status == 200, log_path.read_text()
        status, body, _ = _get(base_url + "/readyz")
        assert status == 200, body
        assert b'"database": "ok", "broker": "ok", "cache": "ok"' in body
        # The local SQLite database, seeded with the demo merchant.
        assert (project / "var" / "tinko.sqlite3").is_file()
        assert "demo@example.com" in log_path.read_text()
    finally:
        # make and its runserver children share a process group; make may have failed and gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
