"""``python manage.py simulate_policy``: retry policies side by side with the fixed baselines, in a simulation.

Replays a synthetic population (docs/simulator.md) or an organization's own
recent failures through Tinko's classifier and planner with a simulated clock.
Moves no money, sends nothing, writes nothing.
"""

from __future__ import annotations

import json as jsonlib
import time

from django.core.management.base import BaseCommand, CommandError

from recovery.models import RetryPolicy
from recovery.simulator.population import MIXES, PopulationModel
from recovery.simulator.service import MAX_SIZE, simulate, tinko_default_policy
from tinko.models import Organization

COLUMNS = (
    ("value_recovered_pct", "% value"), ("payments_recovered_pct", "% paid"), ("charges_per_recovered", "charges/rec"),
    ("messages_per_payment", "msgs/pay"), ("median_days_to_recover", "median days"),
    ("network_violations", "net. violations"), ("messages_to_fraud", "msgs to fraud"),
    ("messages_in_quiet_hours", "msgs quiet h."), ("double_charges", "double charges"),
)


def parse_params(pairs: list[str]) -> dict:
    """``name=value`` pairs (values as JSON, else text) into model parameters."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--param needs name=value, not {pair!r}")
        try:
            params[name.strip()] = jsonlib.loads(value)
        except jsonlib.JSONDecodeError:
            params[name.strip()] = value
    return params


class Command(BaseCommand):
    help = (
        "Compare retry policies with the fixed baselines ('8 retries in 14 days + 2 e-mails', 'retry on days "
        "8/16/24 + 1 e-mail', 'daily for 14 days') over a simulated population or an organization's recent "
        "failures. Prints recovery, charges, messages and rule breaches per strategy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", help="An organization's slug: compare its policies (all, or --policy).")
        parser.add_argument("--policy", action="append", default=[], help="A policy name or id of the organization (repeat for more).")
        parser.add_argument("--policy-json", action="append", default=[], metavar="JSON",
                            help='An unsaved policy to try, as JSON fields of a retry policy, e.g. '
                                 '\'{"name": "Paydays", "payday_alignment": true, "payday_days": []}\' (repeat for more).')
        parser.add_argument("--source", choices=["synthetic", "recent"], default="synthetic",
                            help="A synthetic population (default) or the organization's failures of the last 90 days.")
        parser.add_argument("--size", type=int, default=MAX_SIZE, help=f"Failures to simulate (1–{MAX_SIZE}, default {MAX_SIZE}).")
        parser.add_argument("--seed", type=int, action="append", default=[], help="Random seed (repeat for several runs; default 1).")
        parser.add_argument("--mix", choices=sorted(MIXES), default="subscriptions", help="The population's decline mix.")
        parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                            help="Change a population parameter (see docs/simulator.md), e.g. --param paycheck_covers=0.6.")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on standard error.")

    def handle(self, *args, organization, policy, policy_json, source, size, seed, mix, param, json: bool, no_progress,
               **options):
        if not 1 <= size <= MAX_SIZE:
            raise CommandError(f"--size must be between 1 and {MAX_SIZE}.")
        try:
            model = PopulationModel.from_dict({**parse_params(param), "mix": mix})
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        org = None
        if organization:
            org = Organization.objects.filter(slug=organization).first()
            if org is None:
                raise CommandError(f"No organization with the slug {organization!r}.")
        elif source == "recent" or policy:
            raise CommandError("--source recent and --policy need --organization.")
        policies = self._policies(org, policy) + [_unsaved_policy(text) for text in policy_json]
        runs = []
        for one_seed in seed or [1]:
            started = time.monotonic()
            try:
                result = simulate(policies=policies, model=model, size=size, seed=one_seed, organization=org,
                                  source=source, progress=None if no_progress else self._progress)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            result["seconds"] = round(time.monotonic() - started, 1)
            runs.append(result)
            if not no_progress:
                self.stderr.write("")
            if not json:
                self._table(result)
        if json:
            self.stdout.write(_json_dumps(runs if len(runs) > 1 else runs[0]))

    def _policies(self, org, wanted):
        if org is None:
            return [("Tinko default", tinko_default_policy())]
        found = RetryPolicy.objects.filter(organization=org).order_by("-is_default", "name")
        if wanted:
            chosen = []
            for name in wanted:
                match = [p for p in found if p.name == name or str(p.pk) == name]
                if not match:
                    raise CommandError(f"{org.slug} has no policy named {name!r}.")
                chosen.append(match[0])
            found = chosen
        return [(p.name, p) for p in found]

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // total
        self.stderr.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {done:>5}/{total} failures", ending="")
        self.stderr.flush()

    def _table(self, result) -> None:
        self.stdout.write(
            f"Seed {result['seed']}, {result['size']} failures ({result['source']}, mix {result['model']['mix']}), "
            f"{result['seconds']} s"
        )
        name_width = max(len(r["name"]) for r in result["results"]) + 2
        self.stdout.write("".ljust(name_width) + "".join(label.rjust(16) for _, label in COLUMNS))
        for row in result["results"]:
            cells = "".join(("—" if row[key] is None else str(row[key])).rjust(16) for key, _ in COLUMNS)
            self.stdout.write((row["name"] + (" *" if row["baseline"] else "")).ljust(name_width) + cells)
        self.stdout.write("* fixed baseline: ignores decline codes and network rules")
        families = sorted({f for row in result["results"] for f in row["per_category"]})
        self.stdout.write("% of value recovered per category:")
        self.stdout.write("".ljust(name_width) + "".join(f[:14].rjust(16) for f in families))
        for row in result["results"]:
            cells = "".join(str(row["per_category"].get(f, {}).get("value_recovered_pct", "—")).rjust(16) for f in families)
            self.stdout.write(row["name"].ljust(name_width) + cells)
        self.stdout.write("")


def _unsaved_policy(text: str) -> tuple[str, RetryPolicy]:
    """(name, policy) from ``--policy-json``: Tinko's defaults with these fields changed; bad fields are an error."""
    from recovery.steps import validate_steps

    try:
        fields = jsonlib.loads(text)
    except ValueError as exc:
        raise CommandError(f"--policy-json is not valid JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise CommandError("--policy-json needs an object of policy fields.")
    fields.setdefault("name", "Tried policy")
    if "steps" in fields:
        problems = validate_steps(fields["steps"])
        if problems:
            raise CommandError(f"--policy-json steps: {problems}")
        fields["steps"] = {**tinko_default_policy().steps, **fields["steps"]}
    try:
        return str(fields["name"]), RetryPolicy(**fields)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--policy-json: {exc}") from exc


def _json_dumps(data) -> str:
    return jsonlib.dumps(data, indent=2, default=str)
