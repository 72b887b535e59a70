"""CLI: ``kowalski api`` (the server) and ``kowalski bench api`` (the benchmark)."""

from __future__ import annotations


def cmd_api(args) -> int:
    from api.app import run
    from kowalski.config import get_config
    return run(get_config(), args.host, args.port, args.processes)


def cmd_bench(args) -> int:
    from api.bench import main
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
    b.add_argument("--requests", type=int, default=400, help="requests per scenario (default 400)")
    b.add_argument("--processes", type=int, default=None, help="API processes (default: api.processes)")
    b.add_argument("--database", default="kowalski_bench_api", help="database to load and query (default kowalski_bench_api)")
    b.add_argument("--reload", action="store_true", help="drop and reload the archive even if it holds N alerts")
    b.add_argument("--port", type=int, default=None, help="port for the API under test (default: a free one)")
    b.add_argument("--json", default=None, help="also write the figures to this JSON file")
    b.set_defaults(func=cmd_bench)
