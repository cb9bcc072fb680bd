"""`.env.example` documents every variable the settings read."""

from __future__ import annotations

import re

from tests.ops.procs import BASE_DIR

SETTINGS = BASE_DIR / "tinko" / "settings.py"
ENV_EXAMPLE = BASE_DIR / ".env.example"

# env.str("X"), env.list("X"), env.db("X"), _secret("X"), _bool("X"), _int("X"), os.environ.get("X"), ...
_READ_RE = re.compile(r"""(?:\benv(?:\.\w+)?|_secret|_bool|_int|os\.environ\.get)\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def settings_variables() -> set[str]:
    return set(_READ_RE.findall(SETTINGS.read_text()))


def documented_variables() -> dict[str, list[str]]:
    """Variable name -> the comment lines right above its (possibly commented-out) assignment."""
    documented: dict[str, list[str]] = {}
    comments: list[str] = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(1)] = comments
            comments = []
        elif line.startswith("#"):
            comments.append(line)
        else:
            comments = []
    return documented


def test_settings_read_the_variables_this_test_expects():
    # Guards the scanner itself: if it stopped matching, the next test would pass vacuously.
    assert {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "SENTRY_DSN"} <= settings_variables()


def test_every_variable_read_by_settings_is_in_env_example():
    missing = settings_variables() - set(documented_variables())
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_documented_variable_has_a_comment():
    undocumented = [name for name, comments in documented_variables().items() if not comments]
    assert not undocumented, f"explain in .env.example: {undocumented}"
