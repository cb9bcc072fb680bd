"""Wait until the database has every migration this code knows (a Kubernetes init container runs it).

The migration Job of a release applies them; pods of the new release start only
once it has, so they never run against an older schema.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


def unapplied_migrations() -> list[str]:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


class Command(BaseCommand):
    help = "Wait until every migration is applied (exit 0), or fail after --timeout seconds."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=int, default=600, help="Seconds to wait at most (default 600).")
        parser.add_argument("--interval", type=float, default=5, help="Seconds between looks (default 5).")

    def handle(self, *args, timeout, interval, **options):
        deadline = time.monotonic() + timeout
        while True:
            try:
                missing = unapplied_migrations()
            except Exception as exc:  # the database may still be starting
                missing = [f"(database not reachable: {type(exc).__name__})"]
                connections.close_all()
            if not missing:
                self.stdout.write("Every migration is applied.")
                return
            if time.monotonic() >= deadline:
                raise CommandError(f"Still not applied after {timeout} s: {', '.join(missing[:10])}")
            self.stdout.write(f"Waiting for {len(missing)} migration(s), e.g. {missing[0]}")
            time.sleep(interval)
