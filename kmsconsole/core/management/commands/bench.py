"""`python manage.py bench policy`: decision latency of the policy engine (median and p99).

Benchmarks are measurements, not tests: they are never part of `make test`. README shows how to run them and
what they printed on the reference machine.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from policies.engine.bench import run_policy_benchmark


class Command(BaseCommand):
    help = "Run a benchmark: `policy` (decision latency of the policy engine)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", choices=["policy"])
        parser.add_argument("--iterations", type=int, default=20_000)
        parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        results = run_policy_benchmark(options["iterations"])
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
            return
        self.stdout.write(
            f"Policy decisions, {results['iterations']} iterations per scenario (microseconds):"
        )
        scenarios: dict[str, Any] = results["scenarios"]
        for name, scenario in scenarios.items():
            mixed = scenario["mixed"]
            self.stdout.write(
                f"{name}: median {mixed['median_us']:.2f}, p99 {mixed['p99_us']:.2f} "
                f"({scenario['key_policy_statements']}-statement key policy with conditions, "
                f"two identity policies, {scenario['grants']} grants)"
            )
            for path, numbers in scenario["paths"].items():
                self.stdout.write(
                    f"    {path:16} median {numbers['median_us']:.2f}, p99 {numbers['p99_us']:.2f}"
                )
        for name in ("compile_key_policy_cache_hit", "request_context_build"):
            numbers = results[name]
            self.stdout.write(f"{name}: median {numbers['median_us']:.2f}, p99 {numbers['p99_us']:.2f}")
