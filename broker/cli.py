"""Broker commands: `kowalski produce`, `kowalski broker [stats|replay]`, `kowalski catalog load|synth|cache`."""

from __future__ import annotations

import json
import time
import urllib.request

from kowalski.config import get_config


def _fail(msg: str):
    from kowalski.errors import CLIError

    raise CLIError(msg)


def cmd_produce(args) -> int:
    from broker.produce import ProduceError, produce

    if args.rate is not None and args.rate <= 0:
        _fail("--rate must be positive")
    if args.replicate < 0:
        _fail("--replicate must be >= 0")
    config = get_config()
    try:
        res = produce(config["kafka"]["bootstrap_servers"], args.topic, args.paths, rate=args.rate,
                      replicate=args.replicate, progress=not args.quiet)
    except ProduceError as exc:
        _fail(str(exc))
    print(f"produced {res['messages']} alerts ({res['bytes'] / 1e6:.1f} MB) to {res['topic']} "
          f"in {res['seconds']} s ({res['rate']} alerts/s)")
    return 0


def cmd_broker(args) -> int:
    config = get_config()
    if args.action == "stats":
        return _stats(config, args)
    if args.action == "replay":
        from broker.produce import replay_shared_nights
        for line in replay_shared_nights(config):
            print(line, flush=True)
        return 0
    from broker.consumer import run_broker
    from kowalski.surveys import get_survey

    surveys = [s.strip().lower() for part in (args.survey or config["broker"]["surveys"]) for s in str(part).split(",")]
    for s in surveys:
        if s not in config["surveys"]:
            _fail(f"unknown survey {s!r}; configured: {', '.join(config['surveys'])}")
        get_survey(s)
    run_broker(config, surveys, group_id=args.group_id, scheduler_address=args.scheduler,
               metrics_port=args.metrics_port)
    return 0


def _stats(config, args) -> int:
    port = args.metrics_port if args.metrics_port and args.metrics_port > 0 else config["broker"]["metrics"]["port"]
    url = f"http://{config['broker']['metrics']['host']}:{port}/stats"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            stats = json.loads(r.read())
    except OSError as exc:
        _fail(f"broker not reachable at {url} ({exc}); is it running? (`kowalski status`)")
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"state: {stats['state']}   uptime: {stats['uptime_s']} s   dead letters: {stats['dead_letters']}   "
          f"database outages: {stats['db_outages']}")
    lat = stats["latency_s"]
    if lat["n"]:
        print(f"latency Kafka -> stored: p50 {lat['p50']:.3f} s  p95 {lat['p95']:.3f} s  (last {lat['n']} alerts)")
    for name, s in stats["surveys"].items():
        stages = "  ".join(f"{k} {v:.2f}" for k, v in s["ms_per_alert"].items())
        print(f"{name:6s} messages {s['messages']:7d}  stored {s['stored']:7d}  duplicates {s['duplicates']:6d}  "
              f"failed {s['failed']:5d}  objects new {s['aux_new']} updated {s['aux_updated']}")
        if stages:
            print(f"       ms/alert: {stages}")
    return 0


def cmd_catalog(args) -> int:
    from broker.catalogs import CatalogError, load_catalog, synth_catalog

    config = get_config()
    try:
        if args.catalog_action == "load":
            res = load_catalog(config, args.file, args.name, ra_col=args.ra_col, dec_col=args.dec_col,
                               id_col=args.id_col, progress=not args.quiet, geo_index=False if args.no_geo_index else None)
        elif args.catalog_action == "cache":
            from broker.stages.crossmatch import build_cache, cache_path, collection_uuid

            if collection_uuid(config, args.name) is None:
                _fail(f"no collection {args.name!r} in database {config['database']['name']!r}")
            t0 = time.monotonic()
            count = build_cache(config, args.name)
            res = {"catalog": args.name, "cached": count, "path": str(cache_path(config, args.name)),
                   "seconds": round(time.monotonic() - t0, 2)}
        else:
            centres = None
            if args.around:
                try:
                    centres = [tuple(float(x) for x in a.split(",")) for a in args.around]
                    assert all(len(c) == 2 and 0 <= c[0] < 360 and -90 <= c[1] <= 90 for c in centres)
                except (ValueError, AssertionError):
                    _fail("--around takes RA,DEC in degrees (0 <= RA < 360, -90 <= DEC <= 90)")
            res = synth_catalog(config, args.name, args.sources, centres=centres, density_per_deg2=args.density,
                                seed=args.seed, progress=not args.quiet, geo_index=False if args.no_geo_index else None)
    except CatalogError as exc:
        _fail(str(exc))
    print(json.dumps(res))
    return 0


def register(sub) -> None:
    p = sub.add_parser("produce", help="publish alert files (.avro, folders, .tar.gz) to a Kafka topic")
    p.add_argument("--topic", required=True)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--rate", type=float, default=None, help="alerts per second (default: as fast as possible)")
    p.add_argument("--replicate", type=int, default=0, help="also send K synthetic copies of each alert")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("broker", help="run the alert broker, `broker stats`, or `broker replay` (the shared real "
                                      "nights into topics not yet there; what `kowalski up` does)")
    p.add_argument("action", nargs="?", choices=["run", "stats", "replay"], default="run")
    p.add_argument("--survey", action="append", help="survey(s) to ingest (repeat or comma-separate)")
    p.add_argument("--group-id", default=None)
    p.add_argument("--scheduler", default=None, help="a Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--metrics-port", type=int, default=None, help="run: 0 = any free port, -1 = none; stats: the port to ask")
    p.add_argument("--json", action="store_true", help="stats as JSON")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("catalog", help="load or synthesise a cross-match catalog")
    csub = p.add_subparsers(dest="catalog_action", required=True)
    c = csub.add_parser("load", help="load a CSV, FITS or Parquet catalog")
    c.add_argument("file")
    c.add_argument("--name", required=True)
    c.add_argument("--ra-col")
    c.add_argument("--dec-col")
    c.add_argument("--id-col")
    c.add_argument("--no-geo-index", action="store_true")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_catalog)
    c = csub.add_parser("cache", help="rebuild the broker's cross-match cache of a catalog changed by other tools")
    c.add_argument("name")
    c.set_defaults(func=cmd_catalog)
    c = csub.add_parser("synth", help="a synthetic catalog at realistic density around sky positions")
    c.add_argument("--name", required=True)
    c.add_argument("--sources", type=int, required=True)
    c.add_argument("--around", action="append", metavar="RA,DEC",
                   help="centre(s); default: the positions of the real ZTF sample alerts")
    c.add_argument("--density", type=float, default=50000.0, help="sources per square degree")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-geo-index", action="store_true")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_catalog)
