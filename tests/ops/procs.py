"""Run Django in a child process with a clean, explicit environment.

Start-up behaviour (settings validation, Sentry init, which process starts a
worker) happens once per process, so it is tested in fresh ones. The child gets
nothing from the developer's shell or a local .env file except PATH and HOME.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]

# A key that passes the production checks; only ever used by these tests.
PRODUCTION_SECRET_KEY = "test-only-" + "Vq7Lr2Xp9Kd4Zm8Ns3Bw6Hc1Jf5Tg0Ya" * 2
PRODUCTION_ENCRYPTION_KEY = "hHi48YOB8laP8vbGqRPB1GDkOQr-N1PHKvS7XdiPsJ4="


def clean_env(**variables: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "TINKO_DOTENV": "",
        "DJANGO_SETTINGS_MODULE": "tinko.settings",
    }
    env.update(variables)
    return env


def production_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """DEBUG off with a real-looking key and host, SQLite in ``tmp_path`` unless overridden."""
    defaults = {
        "SECRET_KEY": PRODUCTION_SECRET_KEY,
        "ALLOWED_HOSTS": "tinko.example.com",
        "TINKO_ENCRYPTION_KEYS": PRODUCTION_ENCRYPTION_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'tinko.sqlite3'}",
    }
    defaults.update(variables)
    return clean_env(**defaults)


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


DJANGO_SETUP = "import django; django.setup()\n"


def wait_for_server(probe, *, process: subprocess.Popen, log_path: Path, what: str, timeout: float = 60):
    """Call ``probe()`` until it answers (returns without OSError); its result is returned.

    Fails with the server's log when the process exits or ``timeout`` seconds pass.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up:\n{log_path.read_text()}")
        time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        started = time.monotonic()
        conn.request(method, path, body=body, headers={"Host": "tinko.example.com", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders()), time.monotonic() - started
    finally:
        conn.close()


_static_collected = False


def collect_static(env: dict[str, str]) -> None:
    """``collectstatic`` once per test run, as the Docker image does at build time.

    Production pages name files through the static manifest; without it every
    HTML page (a 404 too) fails to render.
    """
    global _static_collected
    if not _static_collected:
        collected = run_manage("collectstatic", "--noinput", env=env)
        assert collected.returncode == 0, collected.stderr
        _static_collected = True


class Gunicorn:
    """gunicorn with gunicorn.conf.py and production settings on a free port; ``env`` adds or overrides variables."""

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        self.log = tmp_path / "gunicorn.log"
        environment = production_env(tmp_path, PORT=str(self.port), WEB_CONCURRENCY="1", GUNICORN_THREADS="4",
                                     SECURE_SSL_REDIRECT="false", **env)
        collect_static(environment)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "tinko.wsgi:application"],
                cwd=BASE_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for_server(lambda: request(self.port, "GET", "/healthz"), process=self.process, log_path=self.log,
                        what="gunicorn")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
