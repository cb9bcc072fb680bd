"""The published OpenAPI schema matches the answers: schemathesis against a live gunicorn, zero failures.

Phases examples, coverage and fuzzing; checks not_a_server_error,
status_code_conformance and response_schema_conformance; ``--rate-limit auto``
honours Retry-After should a 429 come. The run has a short time budget
(SCHEMATHESIS_SECONDS) so the suite stays fast; run it longer by hand with the
same command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.ops.procs import BASE_DIR, Gunicorn
from tests.recovery.conftest import report

SCHEMATHESIS_SECONDS = int(os.environ.get("SCHEMATHESIS_SECONDS", "45"))


@pytest.mark.timeout(SCHEMATHESIS_SECONDS + 120)
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_failure(tmp_path, api_key, default_rules):
    import json

    from tests.ops.procs import request

    db = connection.settings_dict
    server = Gunicorn(tmp_path, DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                      TINKO_API_RATE="100000/min", ALLOWED_HOSTS="127.0.0.1,tinko.example.com")
    try:
        auth = {"Authorization": f"Bearer {api_key[1]}", "Content-Type": "application/json"}
        # A payment to find, so the operations on /payments/{reference} reach their logic too.
        status, *_ = request(server.port, "POST", "/api/v1/events/payment_failed",
                             json.dumps(report(reference="order-1")), auth)
        assert status == 201
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [str(st), "run", f"http://127.0.0.1:{server.port}/api/schema/?format=json",
             "-H", f"Authorization: Bearer {api_key[1]}",
             "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance",
             "--phases", "examples,coverage,fuzzing", "--max-time", str(SCHEMATHESIS_SECONDS),
             "--max-examples", "20", "--rate-limit", "auto", "--workers", "1", "--request-timeout", "10",
             "--seed", os.environ.get("SCHEMATHESIS_SEED", "14"), "--no-color"],
            cwd=BASE_DIR, capture_output=True, text=True, timeout=SCHEMATHESIS_SECONDS + 90,
        )
        summary = result.stdout[-3000:]
        print(summary)
        # The server's own account of any 500 (its traceback), so a failure found once can be fixed.
        errors = [line for line in server.log.read_text(errors="replace").splitlines() if '"level": "ERROR"' in line]
        assert result.returncode == 0, summary + result.stderr[-2000:] + "\n".join(errors[-5:])
        assert " passed" in summary and "failure" not in summary.lower().split("summary")[-1], summary
    finally:
        server.stop()
