"""`python manage.py bench policy|kms`.

- `policy`: decision latency of the policy engine (median and p99).
- `kms`: requests/s, p50, p99 and errors of one KMS operation driven over real HTTP with SigV4-signed requests
  against a running server (`--endpoint`), optionally beside moto's KMS server in the same run
  (`--compare-moto`). The load generator is `kmsconsole.bench.loadgen` (pure client code).
- `kms-inprocess`: the CPU one such request costs the application itself, called in this process with no web
  server (`kmsconsole.bench.inprocess`); steadier than `kms` on a shared machine, and exact under callgrind.

Benchmarks are measurements, not tests: they are never part of `make test`. README shows how to run them and
what they printed on the reference machine.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kmsconsole.bench import loadgen
from policies.engine.bench import run_policy_benchmark


class Command(BaseCommand):
    help = (
        "Run a benchmark: `policy` (decision latency of the policy engine), `kms` (load on the endpoint) or "
        "`kms-inprocess` (the application's CPU per request, no web server)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", choices=["policy", "kms", "kms-inprocess"])
        parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
        policy = parser.add_argument_group("policy")
        policy.add_argument("--iterations", type=int, default=20_000)
        kms = parser.add_argument_group("kms")
        kms.add_argument("--endpoint", help="base URL of the running KMS server, e.g. http://127.0.0.1:8000")
        kms.add_argument("--op", choices=sorted(loadgen.OPERATIONS), default="encrypt")
        kms.add_argument("--concurrency", type=int, default=16, help="concurrent keep-alive connections")
        kms.add_argument("--duration", type=float, default=10.0, help="measured seconds (after the warm-up)")
        kms.add_argument("--warmup", type=float, default=2.0, help="seconds of load not measured")
        kms.add_argument("--payload-bytes", type=int, default=4096, help="plaintext or message size")
        kms.add_argument("--client-processes", type=int, default=1, help="load generator processes")
        kms.add_argument("--access-key-id", help="sign as this access key (default: set one up)")
        kms.add_argument("--secret-access-key")
        kms.add_argument("--key-id", help="use this key (default: create one of the spec --op needs)")
        kms.add_argument(
            "--seed-grants",
            type=int,
            default=0,
            help="first bring the key to this many grants (to other principals), inserted in bulk",
        )
        kms.add_argument(
            "--seed-keys", type=int, default=0, help="first bring the key's account to this many keys"
        )
        kms.add_argument("--region", default=settings.KMS_REGION)
        inprocess = parser.add_argument_group("kms-inprocess (also --op, --payload-bytes)")
        inprocess.add_argument("--requests", type=int, default=2000, help="measured requests")
        inprocess.add_argument("--threads", type=int, default=1, help="threads calling the application")
        inprocess.add_argument("--warmup-requests", type=int, default=200, help="requests not measured")
        kms.add_argument(
            "--compare-moto",
            action="store_true",
            help="also drive moto's KMS server (gunicorn, --moto-workers workers) in the same run",
        )
        kms.add_argument("--moto-workers", type=int, default=2)
        kms.add_argument(
            "--moto-worker-class",
            choices=["gthread", "sync"],
            default="gthread",
            help="moto's gunicorn worker class (gthread: 4 threads each, threaded like ours; sync: gunicorn's default)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["target"] == "kms":
            self._kms(options)
        elif options["target"] == "kms-inprocess":
            self._kms_inprocess(options)
        else:
            self._policy(options)

    def _kms_inprocess(self, o: dict[str, Any]) -> None:
        from kmsconsole.bench import inprocess
        from kmsconsole.wsgi import application_without_access_log

        if o["requests"] < 1 or o["threads"] < 1 or o["warmup_requests"] < 0:
            raise CommandError("--requests and --threads must be at least 1, --warmup-requests at least 0")
        try:
            requests = inprocess.prepared_requests(o["op"], payload_bytes=o["payload_bytes"])
        except loadgen.BenchError as exc:
            raise CommandError(str(exc)) from exc
        result = inprocess.run_in_process(
            application_without_access_log,
            requests,
            count=o["requests"],
            threads=o["threads"],
            warmup=o["warmup_requests"],
        )
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(result.statuses.items()))
        if result.statuses != {"200 OK": result.requests}:
            # Cheap refusals (a quota's ThrottlingException, signatures older than the skew window) would pass
            # for a faster request path.
            raise CommandError(f"Not every request succeeded ({statuses}): the measurement means nothing.")
        if o["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        self.stdout.write(
            f"{loadgen.OPERATIONS[o['op']]} in process, {o['payload_bytes']}-byte payload, {result.requests} "
            f"requests on {result.threads} thread(s): {result.cpu_ms_per_request:.3f} ms of CPU per request, "
            f"{result.requests_per_second:.0f} requests/s; answers {statuses}"
        )

    def _kms(self, o: dict[str, Any]) -> None:
        if not o["endpoint"]:
            raise CommandError("bench kms needs --endpoint (the URL of a running server)")
        given = [o["access_key_id"], o["secret_access_key"], o["key_id"]]
        if any(given) and not all(given):
            raise CommandError("--access-key-id, --secret-access-key and --key-id go together")
        op = o["op"]
        if all(given):
            access_key_id, secret, key_id = given
        else:
            from kmsconsole.bench.setup import prepare

            spec, usage = loadgen.KEY_SPECS[op]
            principal = prepare(key_spec=spec, key_usage=usage)
            access_key_id, secret, key_id = (
                principal.access_key_id,
                principal.secret_access_key,
                principal.key_id,
            )
        if o["seed_grants"] or o["seed_keys"]:
            from kmsconsole.bench.setup import seed

            seeded = seed(key_id=key_id, grants=o["seed_grants"], keys=o["seed_keys"])
            self.stderr.write(
                f"Seeded: {seeded.grants_on_key} grants on the key, {seeded.keys_in_account} keys in its account"
            )
        ours = loadgen.Target(o["endpoint"], access_key_id, secret, o["region"])
        results = {"kmsconsole": self._drive(ours, key_id, o)}
        if o["compare_moto"]:
            from kmsconsole.bench.moto import MotoServer

            with tempfile.TemporaryDirectory() as folder:
                moto_keys = Path(folder) / "moto-keys.json"
                with MotoServer(
                    workers=o["moto_workers"],
                    worker_class=o["moto_worker_class"],
                    region=o["region"],
                    keys_file=moto_keys,
                ) as moto:
                    target = loadgen.Target(
                        moto.endpoint, "AKIAMOTOBENCH0000000", "moto-ignores-it", o["region"]
                    )
                    moto_key = moto.key_ids[loadgen.KEY_SPECS[op][0]]
                    results[f"moto ({o['moto_workers']} {o['moto_worker_class']} workers)"] = self._drive(
                        target, moto_key, o
                    )
        self._print_kms(results, o)

    def _drive(self, target: loadgen.Target, key_id: str, o: dict[str, Any]) -> loadgen.Summary:
        op = o["op"]
        ciphertexts: list[str] = []

        def bodies() -> list[bytes]:
            return loadgen.request_bodies(
                op, key_id, payload_bytes=o["payload_bytes"], count=loadgen.POOL_SIZE, ciphertexts=ciphertexts
            )

        try:
            if op == "decrypt":
                ciphertexts = loadgen.prepare_ciphertexts(
                    target, key_id, payload_bytes=o["payload_bytes"], count=8
                )
            return loadgen.run_load(
                target,
                loadgen.OPERATIONS[op],
                bodies,
                concurrency=o["concurrency"],
                duration=o["duration"],
                warmup=o["warmup"],
                processes=o["client_processes"],
            )
        except loadgen.BenchError as exc:
            raise CommandError(str(exc)) from exc

    def _print_kms(self, results: dict[str, loadgen.Summary], o: dict[str, Any]) -> None:
        if o["json"]:
            self.stdout.write(json.dumps({name: r.as_dict() for name, r in results.items()}, indent=2))
            return
        self.stdout.write(
            f"{loadgen.OPERATIONS[o['op']]}, {o['payload_bytes']}-byte payload, concurrency {o['concurrency']}, "
            f"{o['duration']:g} s measured after {o['warmup']:g} s warm-up, "
            f"{o['client_processes']} client process(es):"
        )
        for name, r in results.items():
            errors = ", ".join(f"{kind}: {count}" for kind, count in r.errors.items()) or "0"
            self.stdout.write(
                f"  {name:30} {r.requests_per_second:8.1f} requests/s   p50 {r.p50_ms:6.2f} ms   "
                f"p99 {r.p99_ms:6.2f} ms   errors {errors}   client CPU {r.client_cpu_percent:.0f}% of a core"
            )
        if len(results) == 2:
            ours, moto = results.values()
            if moto.requests_per_second:
                self.stdout.write(
                    f"  ratio kmsconsole/moto: {ours.requests_per_second / moto.requests_per_second:.2f}x "
                    f"requests/s, p99 {ours.p99_ms:.1f} ms vs {moto.p99_ms:.1f} ms"
                )

    def _policy(self, options: dict[str, Any]) -> None:
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
