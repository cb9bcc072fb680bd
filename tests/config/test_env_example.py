"""`.env.example` documents every variable Tinko reads: settings, management commands, gunicorn.conf.py."""

from __future__ import annotations

import re

from tests.ops.procs import BASE_DIR

SETTINGS = BASE_DIR / "tinko" / "settings.py"
ENV_EXAMPLE = BASE_DIR / ".env.example"

# env.str("X"), env.list("X"), env.db("X"), _secret("X"), _bool("X"), _int("X"),
# os.environ.get("X"), os.environ["X"], os.getenv("X")
_READ_RE = re.compile(
    r"""(?:(?:\benv(?:\.\w+)?|_secret|_bool|_int|os\.environ\.get|os\.getenv)\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def variables_read_by(path) -> set[str]:
    return set(_READ_RE.findall(path.read_text()))


def settings_variables() -> set[str]:
    return variables_read_by(SETTINGS)


def other_variables() -> dict[str, set[str]]:
    """Variables read outside the settings: management commands, gunicorn's configuration."""
    files = [*sorted((BASE_DIR / "tinko" / "management" / "commands").glob("*.py")), BASE_DIR / "gunicorn.conf.py"]
    return {path.relative_to(BASE_DIR).as_posix(): variables_read_by(path) for path in files}


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


def test_the_scanner_finds_reads_outside_the_settings_too():
    found = other_variables()
    assert "TINKO_DEMO_PASSWORD" in found["tinko/management/commands/seed_demo.py"]
    assert {"PORT", "WEB_CONCURRENCY", "LOG_FORMAT"} <= found["gunicorn.conf.py"]
    assert _READ_RE.findall('os.environ["A_B"] os.getenv("C_D")') == ["A_B", "C_D"]


def test_every_variable_read_by_commands_and_gunicorn_is_in_env_example():
    documented = set(documented_variables())
    missing = {path: sorted(names - documented) for path, names in other_variables().items() if names - documented}
    assert not missing, f"add to .env.example: {missing}"


def test_every_variable_read_by_settings_is_in_env_example():
    missing = settings_variables() - set(documented_variables())
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_documented_variable_has_a_comment():
    undocumented = [name for name, comments in documented_variables().items() if not comments]
    assert not undocumented, f"explain in .env.example: {undocumented}"
