"""Start-up configuration: production refuses unsafe settings, bad values name the variable."""

from __future__ import annotations

import os

import pytest

from tests.ops.procs import DJANGO_SETUP, PRODUCTION_SECRET_KEY, clean_env, production_env, run_manage, run_python

PRINT_SECRET_KEY = DJANGO_SETUP + "from django.conf import settings; print(settings.SECRET_KEY)"


def test_production_refuses_to_start_without_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = run_python(DJANGO_SETUP, env)
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    "placeholder",
    [
        "change-me",
        "django-insecure-" + "x1y2z3" * 10,
        "short-but-random-Kq93",
        "a" * 64,
        "replace-this-with-a-real-secret-key-before-going-to-production-ok",
        "local-development-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz",
    ],
)
def test_production_refuses_a_placeholder_secret_key(tmp_path, placeholder):
    result = run_python(DJANGO_SETUP, production_env(tmp_path, SECRET_KEY=placeholder))
    assert result.returncode != 0
    assert "SECRET_KEY looks like a placeholder" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    env = production_env(tmp_path)
    del env["ALLOWED_HOSTS"]
    result = run_python(DJANGO_SETUP, env)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is required when DEBUG is off" in result.stderr


def test_local_mode_starts_without_any_configuration(tmp_path):
    result = run_python(
        DJANGO_SETUP + "from django.conf import settings; print(settings.DEBUG, settings.DATABASES['default']['ENGINE'])",
        clean_env(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'local.sqlite3'}"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "django.db.backends.sqlite3"]


def production_stack_env(tmp_path, **variables) -> dict[str, str]:
    """Production settings on the suite's PostgreSQL and Redis (`make test` and CI provide them), public HTTPS URL."""
    services = {name: os.environ[name] for name in ("DATABASE_URL", "CACHE_URL") if os.environ.get(name)}
    stack = {**services, "REDIS_URL": os.environ["REDIS_URL"], "SITE_URL": "https://tinko.example.com"}
    return production_env(tmp_path, **{**stack, **variables})


def test_deploy_check_reports_no_issues_with_production_settings(tmp_path):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_stack_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_deploy_check_warns_when_production_has_no_redis(tmp_path):
    result = run_manage("check", "--deploy", env=production_stack_env(tmp_path, REDIS_URL=""))
    assert "tinko.W001" in result.stderr
    assert "rate limits become per process; background jobs and the scheduler need Redis" in result.stderr
    assert "tinko.W002" not in result.stderr


@pytest.mark.parametrize("site_url", ["", "http://tinko.example.com"])
def test_deploy_check_warns_when_site_url_is_not_public_https(tmp_path, site_url):
    env = production_stack_env(tmp_path, SITE_URL=site_url)
    if not site_url:
        del env["SITE_URL"]
    result = run_manage("check", "--deploy", env=env)
    assert "tinko.W002" in result.stderr
    assert "links in e-mails" in result.stderr
    assert "tinko.W001" not in result.stderr


def test_deploy_warnings_fail_a_strict_deploy_check(tmp_path):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_stack_env(tmp_path, REDIS_URL=""))
    assert result.returncode != 0
    assert "tinko.W001" in result.stderr


def test_local_mode_needs_neither_redis_nor_an_https_site_url(tmp_path):
    env = clean_env(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'local.sqlite3'}")
    result = run_manage("check", "--deploy", env=env)
    assert "tinko.W00" not in result.stdout + result.stderr


def test_empty_database_url_means_the_local_sqlite_default(tmp_path):
    result = run_python(
        DJANGO_SETUP + "from django.conf import settings; print(settings.DATABASES['default']['NAME'])",
        clean_env(DEBUG="true", DATABASE_URL=""),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("var/tinko.sqlite3")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("SECURE_SSL_REDIRECT", "sometimes", "SECURE_SSL_REDIRECT='sometimes' is not a boolean"),
        ("CONN_MAX_AGE", "abc", "CONN_MAX_AGE='abc' is not an integer"),
        ("SECURE_HSTS_SECONDS", "-5", "SECURE_HSTS_SECONDS='-5' must be at least 0"),
        ("TINKO_INPROCESS_WORKER_THREADS", "0", "TINKO_INPROCESS_WORKER_THREADS='0' must be at least 1"),
        ("DATABASE_CONNECT_TIMEOUT", "soon", "DATABASE_CONNECT_TIMEOUT='soon' is not an integer"),
        ("SENTRY_TRACES_SAMPLE_RATE", "lots", "SENTRY_TRACES_SAMPLE_RATE='lots' is not a number"),
        ("SENTRY_TRACES_SAMPLE_RATE", "2", "SENTRY_TRACES_SAMPLE_RATE='2' must be between 0 and 1"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='LOUD' must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' must be json or text"),
        ("SENTRY_DSN", "not a dsn", "SENTRY_DSN is not a valid Sentry DSN"),
        ("ANYMAIL", "{not json", "ANYMAIL must be a JSON object"),
        ("ANYMAIL", "[1, 2]", "ANYMAIL must be a JSON object"),
        ("EMAIL_URL", "nosuch://user:pw@mail.example.com", "EMAIL_URL is not an e-mail URL"),
        ("TINKO_ENCRYPTION_KEYS", "not-a-fernet-key", "TINKO_ENCRYPTION_KEYS: key 1 is not a Fernet key"),
        ("TINKO_ENCRYPTION_KEYS", "", "TINKO_ENCRYPTION_KEYS is required when DEBUG is off"),
        ("TINKO_API_RATE", "10/month", "TINKO_API_RATE='10/month' is not a rate"),
        ("TINKO_API_RATE", "0/min", "TINKO_API_RATE='0/min' is not a rate"),
    ],
)
def test_bad_value_fails_at_start_up_naming_the_variable(tmp_path, variable, value, message):
    env = production_env(tmp_path, **{variable: value})
    if variable == "DATABASE_CONNECT_TIMEOUT":
        env["DATABASE_URL"] = "postgres://tinko@127.0.0.1:5432/tinko"
    result = run_python(DJANGO_SETUP, env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_unknown_database_url_fails_without_echoing_the_password(tmp_path):
    result = run_python(DJANGO_SETUP, production_env(tmp_path, DATABASE_URL="nosuchdb://tinko:hunter2-pw@db/tinko"))
    assert result.returncode != 0
    assert "DATABASE_URL is not a database URL" in result.stderr
    assert "hunter2-pw" not in result.stderr


def test_secret_key_can_be_read_from_a_file(tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(PRODUCTION_SECRET_KEY[::-1] + "\n")
    env = production_env(tmp_path, SECRET_KEY_FILE=str(secret_file))
    del env["SECRET_KEY"]
    result = run_python(PRINT_SECRET_KEY, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == PRODUCTION_SECRET_KEY[::-1]


def test_secret_file_wins_over_the_plain_variable(tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(PRODUCTION_SECRET_KEY[::-1])
    result = run_python(PRINT_SECRET_KEY, production_env(tmp_path, SECRET_KEY_FILE=str(secret_file)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == PRODUCTION_SECRET_KEY[::-1]


def test_unreadable_secret_file_fails_naming_the_variable(tmp_path):
    env = production_env(tmp_path, SECRET_KEY_FILE=str(tmp_path / "missing"))
    result = run_python(DJANGO_SETUP, env)
    assert result.returncode != 0
    assert "SECRET_KEY_FILE=" in result.stderr
    assert "cannot be read" in result.stderr


def test_a_placeholder_secret_in_a_file_is_refused_too(tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("change-me")
    env = production_env(tmp_path, SECRET_KEY_FILE=str(secret_file))
    del env["SECRET_KEY"]
    result = run_python(DJANGO_SETUP, env)
    assert result.returncode != 0
    assert "SECRET_KEY looks like a placeholder" in result.stderr


def test_dotenv_file_fills_unset_variables_but_never_overrides_the_environment(tmp_path):
    dotenv = tmp_path / "tinko.env"
    dotenv.write_text(f"SECRET_KEY={PRODUCTION_SECRET_KEY}\nALLOWED_HOSTS=from-dotenv.example.com\n")
    env = production_env(tmp_path, TINKO_DOTENV=str(dotenv), ALLOWED_HOSTS="from-env.example.com")
    del env["SECRET_KEY"]
    result = run_python(
        DJANGO_SETUP + "from django.conf import settings; print(settings.SECRET_KEY == %r, settings.ALLOWED_HOSTS)"
        % PRODUCTION_SECRET_KEY,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['from-env.example.com']"


def test_production_security_settings_are_on(tmp_path):
    code = DJANGO_SETUP + (
        "from django.conf import settings as s\n"
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0,"
        " s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_PROXY_SSL_HEADER == ('HTTP_X_FORWARDED_PROTO', 'https'))"
    )
    result = run_python(code, production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"] * 6


def test_models_and_migrations_agree(tmp_path):
    result = run_manage("makemigrations", "--check", "--dry-run", env=production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout
