"""CLI: ``kowalski api`` (the server), ``kowalski bench api`` and ``kowalski bench skymap`` (benchmarks)."""

from __future__ import annotations


def cmd_api(args) -> int:
    from api.app import run
    from kowalski.config import get_config
    return run(get_config(), args.host, args.port, args.processes)


def cmd_bench(args) -> int:
    from api.bench import main
    return main(args)


def cmd_bench_skymap(args) -> int:
    from api.bench_skymap import main
    return main(args)


def register(subparsers) -> None:
    p = subparsers.add_parser("api", help="run the REST API (Tornado; N processes sharing the port)")
    p.add_argument("--host", default=None, help="default: api.host")
    p.add_argument("--port", type=int, default=None, help="default: api.port")
    p.add_argument("--processes", type=int, default=None, help="default: api.processes")
    p.set_defaults(func=cmd_api)

    from kowalski.bench import get_bench_subparsers
    b = get_bench_subparsers(subparsers).add_parser(
        "api", help="API latency and throughput: find, cone 2\"/60\", count, aggregate, PNG cutout")
    b.add_argument("-n", "--alerts", type=int, default=2000, help="archived alerts to measure with (default 2000)")
    b.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    b.add_argument("--catalog-sources", type=int, default=100_000,
                   help="sources of the synthetic catalog the catalog cones query (default 100,000)")
    b.add_argument("--requests", type=int, default=400, help="requests per scenario (default 400)")
    b.add_argument("--processes", type=int, default=None, help="API processes (default: api.processes)")
    b.add_argument("--database", default="kowalski_bench_api", help="database to load and query (default kowalski_bench_api)")
    b.add_argument("--reload", action="store_true", help="drop and reload the archive even if it holds N alerts")
    b.add_argument("--port", type=int, default=None, help="port for the API under test (default: a free one)")
    b.add_argument("--json", default=None, help="also write the figures to this JSON file")
    b.add_argument("--compare-geowithin", action="store_true",
                   help="also time each cone as $geoWithin directly (slow: 17-43 s per cone at 100,000 alerts "
                        "and 1e6 sources on the embedded database, which held 21 GB doing it)")
    b.set_defaults(func=cmd_bench)

    b = get_bench_subparsers(subparsers).add_parser(
        "skymap", help="skymap upload + contours time, and p50/p95 of a 90%% credible-region query")
    b.add_argument("-n", "--alerts", type=int, default=100_000, help="archived alerts (default 100,000)")
    b.add_argument("--uploads", type=int, default=5, help="uploads to time (default 5)")
    b.add_argument("--queries", type=int, default=200, help="region queries per run (default 200)")
    b.add_argument("--processes", type=int, default=2, help="API processes (default 2)")
    b.add_argument("--database", default="kowalski_bench_skymap", help="database (default kowalski_bench_skymap)")
    b.add_argument("--reload", action="store_true", help="reload the alerts even if N are there")
    b.set_defaults(func=cmd_bench_skymap)
