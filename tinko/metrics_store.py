"""The files behind prometheus-client's multiprocess mode (tinko/metrics.py), kept few.

Each process that records metrics writes its values to files named after its pid
(``counter_<pid>.db``, ``histogram_<pid>.db``) in ``PROMETHEUS_MULTIPROC_DIR``, and
every scrape reads all of them. gunicorn replaces a worker every
GUNICORN_MAX_REQUESTS requests, so the directory would gain two files per
replaced worker and scrapes would slow down day after day. Instead, when a worker
has exited, its counters and histograms are added into one archive file per type
and its own files are removed. Scrapes hold a shared lock and the archiving an
exclusive one, so that no scrape sees a value twice or misses it (a counter that
went down would look like a restart to Prometheus).

No Django here: gunicorn's master process calls it.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

ARCHIVED_TYPES = ("counter", "histogram", "summary")


@contextmanager
def _locked(directory: str, mode: int):
    with open(os.path.join(directory, ".lock"), "a+") as lock:
        fcntl.flock(lock, mode)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def reading(directory: str):
    """Hold while collecting the directory's values for a scrape."""
    return _locked(directory, fcntl.LOCK_SH)


def archive_dead_process(pid: int, directory: str) -> None:
    """Add an exited process's counters and histograms to the archive files and remove its own files."""
    from prometheus_client.mmap_dict import MmapedDict

    with _locked(directory, fcntl.LOCK_EX):
        for kind in ARCHIVED_TYPES:
            path = os.path.join(directory, f"{kind}_{pid}.db")
            if not os.path.exists(path):
                continue
            archive = MmapedDict(os.path.join(directory, f"{kind}_archive.db"))
            try:
                # Histograms are stored per bucket, not cumulatively: every value simply adds up.
                for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(path):
                    current, _ = archive.read_value(key)
                    archive.write_value(key, current + value, 0.0)
            finally:
                archive.close()
            os.remove(path)


def clear(directory: str) -> None:
    """Remove every value file (at a server's start: an earlier run's values must not be added in)."""
    os.makedirs(directory, exist_ok=True)
    with _locked(directory, fcntl.LOCK_EX):
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
