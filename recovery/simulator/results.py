"""Running strategies over a population and adding up what they did."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from recovery.simulator.engine import BASELINES, Outcome, TinkoStrategy, forget_classifications
from recovery.simulator.population import Failure, PopulationModel, generate


@dataclass
class Summary:
    """One strategy's figures over one population: what the compare page and ``simulate_policy`` show."""

    name: str
    baseline: bool
    failures: int = 0
    failed_value: int = 0
    recovered: int = 0
    recovered_value: int = 0
    charges: int = 0
    messages: int = 0
    violations: int = 0
    messages_to_fraud: int = 0
    quiet_messages: int = 0
    double_charges: int = 0
    expired_links: int = 0
    days_to_recover: list = field(default_factory=list, repr=False)
    by_family: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]), repr=False)

    def add(self, outcome: Outcome, failed_at) -> None:
        self.failures += 1
        self.failed_value += outcome.amount
        self.charges += outcome.charges
        self.messages += outcome.messages
        self.violations += outcome.violations
        self.messages_to_fraud += outcome.messages_to_fraud
        self.quiet_messages += outcome.quiet_messages
        self.double_charges += outcome.double_charges
        self.expired_links += outcome.expired_links
        family = self.by_family[outcome.family]
        family[0] += 1
        family[2] += outcome.amount
        if outcome.recovered_at is not None:
            self.recovered += 1
            self.recovered_value += outcome.amount
            family[1] += 1
            family[3] += outcome.amount
            self.days_to_recover.append((outcome.recovered_at - failed_at).total_seconds() / 86400)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "baseline": self.baseline,
            "failures": self.failures,
            "value_recovered_pct": _pct(self.recovered_value, self.failed_value),
            "payments_recovered_pct": _pct(self.recovered, self.failures),
            "charges_per_recovered": round(self.charges / self.recovered, 2) if self.recovered else None,
            "messages_per_payment": round(self.messages / self.failures, 2) if self.failures else 0,
            "median_days_to_recover": round(statistics.median(self.days_to_recover), 1) if self.days_to_recover else None,
            "network_violations": self.violations,
            "messages_to_fraud": self.messages_to_fraud,
            "messages_in_quiet_hours": self.quiet_messages,
            "double_charges": self.double_charges,
            "expired_links": self.expired_links,
            "charges": self.charges,
            "messages": self.messages,
            "per_category": {
                family: {"failures": n, "payments_recovered_pct": _pct(r, n), "value_recovered_pct": _pct(rv, v)}
                for family, (n, r, v, rv) in sorted(self.by_family.items())
            },
        }


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def run(*, strategies, model: PopulationModel, failures: list[Failure], progress=None, every: int = 100) -> list[dict]:
    """Every strategy over every failure; ``progress(done, total)`` is called every ``every`` failures."""
    forget_classifications()
    summaries = [Summary(s.name, not isinstance(s, TinkoStrategy)) for s in strategies]
    total = len(failures)
    for done, failure in enumerate(failures, 1):
        for strategy, summary in zip(strategies, summaries):
            summary.add(strategy.run(model, failure), failure.failed_at)
        if progress is not None and (done % every == 0 or done == total):
            progress(done, total)
    return [s.as_dict() for s in summaries]


def compare(*, policies: list[tuple[str, object]], model: PopulationModel, size: int, seed: int, progress=None,
            baselines: bool = True, failures: list[Failure] | None = None, organization=None) -> dict:
    """Policies (name, RetryPolicy) side by side with the fixed baselines over one population."""
    failures = failures if failures is not None else generate(model, size=size, seed=seed)
    strategies = [TinkoStrategy(name, policy, organization=organization) for name, policy in policies]
    if baselines:
        strategies.extend(BASELINES)
    results = run(strategies=strategies, model=model, failures=failures, progress=progress)
    return {"seed": seed, "size": len(failures), "model": model.as_dict(), "results": results}
