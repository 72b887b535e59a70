"""``kowalski filter backtest`` (a version over archived alerts through the engine) and
``kowalski filter deliver`` (the outbox to SkyPortal / Kafka, with retries).

    kowalski filter backtest --filter-id 1 [--fid abc123] [--object-ids ZTF17aadcvhq,...]
                             [--start 2460229.93 --end 2460230.93] [--scheduler tcp://host:8786 | --workers 2]
                             [--output passed.jsonl] [--json]
    kowalski filter backtest --pipeline filter.json --catalog ZTF_alerts --permissions 1,2 --start ... --end ...

Without --object-ids / --start / --end the whole archive of the catalog is used (no one-day
limit here, unlike the API). Progress goes to stderr; the summary (alerts, passed, rate, time)
to stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _fail(msg: str):
    from kowalski.errors import CLIError

    raise CLIError(msg)


def _jd(text: str | None, name: str):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    from kowalski.filters.backtest import BacktestError, _jd as parse

    try:
        return parse(text, name)
    except BacktestError as exc:
        _fail(str(exc))


def _filter_doc(config, args) -> dict:
    from mql import FilterCompileError, validate_pipeline
    from kowalski import db
    from kowalski.repositories import Filters

    if args.filter_id is not None:
        if args.pipeline is not None:
            _fail("give --filter-id or --pipeline, not both")
        doc = Filters(db.get_db(config), config).get(args.filter_id)
        if doc is None:
            _fail(f"Filter id {args.filter_id} not found in database {config['database']['name']!r}")
        if args.permissions is not None:
            doc["permissions"] = args.permissions
        return doc
    if args.pipeline is None:
        _fail("give --filter-id N (a stored filter) or --pipeline FILE|JSON")
    text = args.pipeline
    p = Path(text)
    if not text.lstrip().startswith("[") and p.exists():
        text = p.read_text()
    try:
        validate_pipeline(text)
    except FilterCompileError as exc:
        _fail(f"pipeline refused: {exc}")
    return {"filter_id": None, "catalog": args.catalog, "permissions": args.permissions or [1],
            "fv": [{"fid": "cli000", "pipeline": text}]}


def cmd_backtest(args) -> int:
    from tqdm import tqdm

    from kowalski.filters.backtest import BacktestError, backtest
    from kowalski.config import get_config

    config = get_config()
    doc = _filter_doc(config, args)
    object_ids = [o.strip() for o in args.object_ids.split(",") if o.strip()] if args.object_ids else None
    start, end = _jd(args.start, "--start"), _jd(args.end, "--end")
    if (start is None) != (end is None):
        _fail("--start and --end go together")
    if start is not None and end < start:
        _fail("--end is before --start")
    client = cluster = None
    if args.scheduler or args.workers:
        from dask.distributed import Client, LocalCluster

        if args.scheduler:
            client = Client(args.scheduler, timeout="10s")
        else:
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None,
                                   processes=True)
            client = Client(cluster)
    bar = tqdm(desc="backtest", unit=" alerts", file=sys.stderr, disable=args.quiet)
    seen = [0]

    def progress(summary):
        bar.update(summary.alerts - seen[0])
        seen[0] = summary.alerts
        bar.set_postfix(passed=summary.passed, refresh=False)

    try:
        version, summary = backtest(config, doc, fid=args.fid, object_ids=object_ids, start_jd=start, end_jd=end,
                                    client=client, progress=progress, keep_outputs=args.output is not None,
                                    chunk_size=args.chunk_size)
    except BacktestError as exc:
        _fail(str(exc))
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if args.output:
        from bson import json_util

        with open(args.output, "w") as fh:
            for out in summary.outputs:
                fh.write(json_util.dumps(out) + "\n")
    result = {"filter_id": doc.get("filter_id"), "fid": version["fid"], "catalog": doc["catalog"],
              **summary.as_dict(), "dask": bool(client)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"filter {result['filter_id']} version {result['fid']} on {result['catalog']}: "
              f"{result['passed']} of {result['alerts']} alerts passed ({result['rate']:.2%}), "
              f"{result['errors']} errors, {result['seconds']:.2f} s"
              + (f" ({result['alerts_per_second']} alerts/s)" if result["alerts_per_second"] else "")
              + (" on Dask" if client is not None else ""))
        if summary.first_error:
            print(f"first error: {summary.first_error}")
    return 0


def cmd_deliver(args) -> int:
    import signal
    import threading

    from broker.delivery import Delivery
    from kowalski.config import get_config

    config = get_config()
    for key, on in (("kafka", args.kafka), ("skyportal", args.skyportal)):
        if on:
            config["delivery"][key]["enabled"] = True
    if not any((config["delivery"].get(t) or {}).get("enabled") for t in ("kafka", "skyportal")):
        _fail("no delivery target enabled: set delivery.kafka.enabled / delivery.skyportal.enabled "
              "(or --kafka / --skyportal)")
    if (config["delivery"].get("skyportal") or {}).get("enabled") and not config["delivery"]["skyportal"].get("token"):
        _fail("delivery.skyportal.token is not set")
    surveys = [s.strip().lower() for s in args.survey.split(",") if s.strip()]
    for s in surveys:
        if s not in config["surveys"]:
            _fail(f"unknown survey {s!r}; configured: {', '.join(config['surveys'])}")
    workers = [Delivery(config, s) for s in surveys]
    try:
        if args.once:
            for w in workers:
                res = w.run_once()
                print(f"{w.survey}: " + ", ".join(f"{t} delivered {v['delivered']} failed {v['failed']}"
                                                 for t, v in res.items()) + f"; {w.pending()} still pending")
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        threads = [threading.Thread(target=w.run, args=(stop, args.idle), daemon=True) for w in workers]
        for t in threads:
            t.start()
        while not stop.wait(1):
            pass
        for t in threads:
            t.join(60)
    finally:
        for w in workers:
            w.close()
    return 0


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser("filter", help="user filters: backtest a version over the archive")
    sub = p.add_subparsers(dest="filter_command", required=True, metavar="COMMAND")
    b = sub.add_parser("backtest", help="run a filter version over archived alerts (engine, optional Dask)")
    b.add_argument("--filter-id", type=int, help="a stored filter (its last version unless --fid)")
    b.add_argument("--fid", help="the version to run")
    b.add_argument("--pipeline", help="instead of a stored filter: a pipeline as JSON text or a JSON file")
    b.add_argument("--catalog", default="ZTF_alerts", help="with --pipeline: the alert collection (ZTF_alerts)")
    b.add_argument("--permissions", type=_ints, help="program ids the filter sees, e.g. 1,2")
    b.add_argument("--object-ids", help="comma-separated object ids")
    b.add_argument("--start", help="start JD or ISO time")
    b.add_argument("--end", help="end JD or ISO time")
    b.add_argument("--scheduler", help="Dask scheduler address")
    b.add_argument("--workers", type=int, default=0, help="run on a local Dask cluster of N workers")
    b.add_argument("--chunk-size", type=int, default=500, help="alerts per task (default 500)")
    b.add_argument("--output", help="write the passing outputs as JSON lines to this file")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_backtest)
    d = sub.add_parser("deliver", help="deliver passing alerts from the outbox to SkyPortal and/or Kafka (retries)")
    d.add_argument("--survey", default="ztf", help="comma-separated surveys (default ztf)")
    d.add_argument("--once", action="store_true", help="one pass over what is due, then exit")
    d.add_argument("--kafka", action="store_true", help="enable the Kafka output (delivery.kafka.enabled)")
    d.add_argument("--skyportal", action="store_true", help="enable SkyPortal (delivery.skyportal.enabled)")
    d.add_argument("--idle", type=float, default=1.0, help="seconds to wait when nothing was delivered")
    d.set_defaults(func=cmd_deliver)
