"""Write the entity-relationship diagram of Tinko's models (docs/data-model.md), as Mermaid.

Generated from the models themselves, so that it can be regenerated in one
command after any model change; tests/docs/test_data_model.py fails while the
committed file differs from what this command writes.
"""

from __future__ import annotations

from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import models

DEFAULT_OUTPUT = Path(settings.BASE_DIR) / "docs" / "data-model.md"

# Column types as the diagram names them (Django's internal type → a short SQL-ish word).
TYPES = {
    "AutoField": "int", "BigAutoField": "bigint", "SmallAutoField": "smallint",
    "BigIntegerField": "bigint", "IntegerField": "int", "PositiveIntegerField": "int",
    "PositiveBigIntegerField": "bigint", "PositiveSmallIntegerField": "smallint", "SmallIntegerField": "smallint",
    "CharField": "varchar", "SlugField": "varchar", "EmailField": "varchar", "URLField": "varchar",
    "TextField": "text", "BooleanField": "bool", "NullBooleanField": "bool", "DateTimeField": "timestamptz",
    "DateField": "date", "TimeField": "time", "DurationField": "interval", "DecimalField": "numeric",
    "FloatField": "float", "JSONField": "jsonb", "UUIDField": "uuid", "GenericIPAddressField": "inet",
    "BinaryField": "bytea",
}

HEADER = """# Data model

Generated from the models by `python manage.py er_diagram` (run it after changing a
model; `make test` fails while this file is out of date). One diagram per app: its
models with their columns, and its relations, including those to other apps' models
(shown there without columns). `PK` primary key, `FK` foreign key, `UK` unique.
Crow's feet: `}o--||` many rows to exactly one, `}o--o|` many to zero or one,
`|o--||` one to one.

The tables that grow with traffic, and how they are kept in check, are in
[scaling.md](scaling.md#data-growth).
"""


def own_apps():
    """The project's own apps (their code lives in this repository), in INSTALLED_APPS order."""
    base = Path(settings.BASE_DIR).resolve()
    return [config for config in apps.get_app_configs() if Path(config.path).resolve().parent == base]


def entity(model) -> str:
    return f"{model._meta.app_label}_{model.__name__}"


def column_type(field) -> str:
    if field.is_relation:
        return column_type(field.target_field)
    internal = field.get_internal_type()
    return TYPES.get(internal, internal.removesuffix("Field").lower() or "value")


def attribute(field) -> str:
    keys = []
    if field.primary_key:
        keys.append("PK")
    if field.is_relation:
        keys.append("FK")
    if field.unique and not field.primary_key:
        keys.append("UK")
    line = f"{column_type(field)} {field.column}"
    if keys:
        line += " " + ", ".join(keys)
    if field.is_relation:
        line += f' "{entity(field.related_model)}"'
    return line


def relationship(model, field, ours) -> str | None:
    target = field.related_model
    if target is None or target._meta.label not in ours:
        return None
    if field.many_to_many:
        shape = "}o--o{"
    elif field.one_to_one:
        shape = "|o--o|" if field.null else "|o--||"
    else:
        shape = "}o--o|" if field.null else "}o--||"
    return f'    {entity(model)} {shape} {entity(target)} : "{field.name}"'


def render() -> str:
    configs = own_apps()
    ours = {m._meta.label for c in configs for m in c.get_models()}
    parts = [HEADER]
    for config in configs:
        app_models = sorted(config.get_models(), key=lambda m: m.__name__)
        if not app_models:
            continue
        lines = [f"## {config.label}", "", "```mermaid", "erDiagram"]
        for model in app_models:
            lines.append(f"    {entity(model)} {{")
            lines.extend(f"        {attribute(f)}" for f in model._meta.concrete_fields)
            lines.append("    }")
        for model in app_models:
            for field in [*model._meta.concrete_fields, *model._meta.local_many_to_many]:
                if isinstance(field, (models.ForeignKey, models.ManyToManyField)):
                    line = relationship(model, field, ours)
                    if line:
                        lines.append(line)
        lines.append("```")
        # A model that moved between apps keeps its table: say where its rows are.
        moved = [m for m in app_models if m._meta.db_table != f"{config.label}_{m._meta.model_name}"]
        if moved:
            tables = ", ".join(f"`{entity(m)}` in `{m._meta.db_table}`" for m in moved)
            lines += ["", f"Tables kept from an earlier app: {tables}."]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


class Command(BaseCommand):
    help = "Write docs/data-model.md: the models as Mermaid ER diagrams (--check: fail if it is out of date)."

    def add_arguments(self, parser):
        parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="Where to write (default docs/data-model.md).")
        parser.add_argument("--check", action="store_true", help="Write nothing; fail if the file differs.")

    def handle(self, *args, output, check, **options):
        text = render()
        path = Path(output)
        if check:
            if not path.exists() or path.read_text() != text:
                raise CommandError(f"{path} is out of date: run python manage.py er_diagram")
            self.stdout.write(f"{path} is up to date.")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.stdout.write(f"Wrote {path}")
