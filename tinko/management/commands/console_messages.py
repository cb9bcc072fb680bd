"""The console's translation catalogues (locale/<language>/LC_MESSAGES/django.po and .mo): refresh or check them.

``python manage.py console_messages`` (what ``make messages`` runs) extracts every translatable
string of the console (templates, e-mails, Python) into locale/hi and locale/es, keeps the
translations already written, drops strings no longer used and compiles the .mo files. New
strings arrive untranslated (empty msgstr, or "fuzzy" when gettext guessed from a similar one):
translate them in the .po files, then run it again to compile.

``--check`` changes nothing: it extracts into a scratch copy and fails, listing what is wrong,
when a string is missing from a catalogue or no longer used, is untranslated or fuzzy, or a .mo
is not its .po compiled. The test suite runs it (tests/core/test_console_translations.py).

The pay pages keep their own catalogue (paypages/locale, see the README); this one leaves them out.
Extraction needs GNU gettext (``apt-get install gettext``); running Tinko does not: the .mo files
are committed, compiled with Babel.
"""

from __future__ import annotations

import gettext
import os
import shutil
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

LANGUAGES = ("hi", "es")
# Not the console: the pay pages' own catalogue, tests, build output, static assets, the catalogues themselves,
# and the staff admin (Django's own admin is translated by Django; its Tinko additions stay English).
IGNORE = ["paypages", "tests", "var", "static", "locale", ".venv", "venv", "node_modules", "docs", "deploy", "admin.py"]
SOURCE_SUFFIXES = {".py", ".html", ".txt"}


def locale_dir() -> Path:
    return Path(settings.BASE_DIR) / "locale"


def _extract(root: Path) -> None:
    """makemessages over ``root`` (a checkout or a scratch copy of one), writing into root/locale."""
    with override_settings(LOCALE_PATHS=[str(root / "locale")]):
        cwd = Path.cwd()
        try:
            os.chdir(root)
            call_command(
                "makemessages", locale=list(LANGUAGES), domain="django", ignore_patterns=IGNORE,
                no_obsolete=True, add_location="file", verbosity=0,
            )
        finally:
            os.chdir(cwd)


def _compile(po_path: Path) -> None:
    with po_path.open("rb") as po:
        catalog = read_po(po)
    with po_path.with_suffix(".mo").open("wb") as mo:
        write_mo(mo, catalog, use_fuzzy=False)


def _ids(po_path: Path) -> set[str]:
    with po_path.open("rb") as po:
        return {message.id if isinstance(message.id, str) else message.id[0] for message in read_po(po) if message.id}


def problems(*, extract: bool = True) -> list[str]:
    """What is wrong with the committed catalogues, as sentences; empty when they are current and complete.

    ``extract=False`` skips comparing them with the source (only translations and compiled files).
    """
    found: list[str] = []
    base = Path(settings.BASE_DIR)
    if extract:
        found += _stale(base)
    return found + _translations()


def _stale(base: Path) -> list[str]:
    """Strings the source has and the catalogues lack, or the other way round (extracted in a scratch copy)."""
    found: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for directory, subdirectories, files in os.walk(base):
            # Prune what makemessages would ignore anyway (node_modules, .venv…), at any depth.
            subdirectories[:] = [d for d in subdirectories if d not in IGNORE and not d.startswith(".")]
            for name in files:
                path = Path(directory) / name
                if path.suffix in SOURCE_SUFFIXES and name not in IGNORE:
                    relative = path.relative_to(base)
                    (root / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, root / relative)
        for language in LANGUAGES:
            committed = locale_dir() / language / "LC_MESSAGES" / "django.po"
            if committed.exists():
                (root / "locale" / language / "LC_MESSAGES").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(committed, root / "locale" / language / "LC_MESSAGES" / "django.po")
        _extract(root)
        for language in LANGUAGES:
            committed = locale_dir() / language / "LC_MESSAGES" / "django.po"
            if not committed.exists():
                found.append(f"{language}: no catalogue at {committed.relative_to(base)}")
                continue
            fresh = _ids(root / "locale" / language / "LC_MESSAGES" / "django.po")
            kept = _ids(committed)
            found += [f"{language}: not in the catalogue: {msgid!r}" for msgid in sorted(fresh - kept)]
            found += [f"{language}: no longer used: {msgid!r}" for msgid in sorted(kept - fresh)]
    return found


def _translations() -> list[str]:
    found: list[str] = []
    base = Path(settings.BASE_DIR)
    for language in LANGUAGES:
        po_path = locale_dir() / language / "LC_MESSAGES" / "django.po"
        if not po_path.exists():
            continue
        with po_path.open("rb") as po:
            catalog = read_po(po)
        mo_path = po_path.with_suffix(".mo")
        compiled = None
        if mo_path.exists():
            with mo_path.open("rb") as mo:
                compiled = gettext.GNUTranslations(mo)
        if compiled is None:
            found.append(f"{language}: {mo_path.relative_to(base)} is missing")
        for message in catalog:
            if not message.id:
                continue
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            msgid = message.id if isinstance(message.id, str) else message.id[0]
            if message.fuzzy:
                found.append(f"{language}: fuzzy (check and remove the flag): {msgid!r}")
            elif not all(strings):
                found.append(f"{language}: not translated: {msgid!r}")
            elif compiled is not None:
                if isinstance(message.id, str):
                    current = compiled.gettext(message.id) == message.string
                else:
                    current = compiled.ngettext(message.id[0], message.id[1], 1) == message.string[0]
                if not current:
                    found.append(f"{language}: {mo_path.relative_to(base)} is not {po_path.name} compiled")
                    break
    return found


class Command(BaseCommand):
    help = "Refresh the console's translation catalogues and compile them (--check: only report what is out of date)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Change nothing; fail when the catalogues are not current.")

    def handle(self, *args, check: bool, **options):
        if shutil.which("xgettext") is None:
            raise CommandError("Extracting strings needs GNU gettext's xgettext: apt-get install gettext")
        if check:
            found = problems()
            if found:
                raise CommandError("The console's catalogues are not current (run make messages):\n  " + "\n  ".join(found))
            self.stdout.write("The console's catalogues are current and complete.")
            return
        locale_dir().mkdir(exist_ok=True)
        _extract(Path(settings.BASE_DIR))
        for language in LANGUAGES:
            _compile(locale_dir() / language / "LC_MESSAGES" / "django.po")
        left = problems(extract=False)
        self.stdout.write(f"Catalogues refreshed in {locale_dir()}; {len(left)} string(s) to translate.")
        for line in left:
            self.stdout.write(f"  {line}")
