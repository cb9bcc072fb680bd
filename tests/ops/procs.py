"""Run Django in a child process with a clean, explicit environment.

Start-up behaviour (settings validation, Sentry init, which process starts a
worker) happens once per process, so it is tested in fresh ones. The child gets
nothing from the developer's shell or a local .env file except PATH and HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
