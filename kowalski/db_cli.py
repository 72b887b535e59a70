"""`kowalski db ensure|migrate|repair`: the archive's collections and indexes, HEALPix ids for an
archive older than them, and the fix for an archive whose unique alert index could not be built
because repeated alerts were already stored."""

from __future__ import annotations

import json
import sys

from kowalski.config import get_config


def _surveys(config, args) -> list[str]:
    from kowalski.errors import CLIError

    names = [s.strip().lower() for part in (args.survey or []) for s in str(part).split(",") if s.strip()]
    for s in names:
        if s not in config["surveys"]:
            raise CLIError(f"unknown survey {s!r}; configured: {', '.join(config['surveys'])}")
    return names or list(config["surveys"])


def cmd_db(args) -> int:
    from kowalski import db

    config = get_config()
    if args.db_action == "migrate":
        return _migrate(config, args)
    surveys = _surveys(config, args)
    if args.db_action == "ensure":
        created = db.ensure_indexes(config, surveys)
        print(json.dumps({c: ix for c, ix in created.items() if ix}))
        return 0
    out = []
    for survey in surveys:
        def progress(ids, removed, survey=survey):
            if not args.quiet and ids % 100 == 0:
                print(f"\r{survey}: {ids} repeated ids, {removed} copies removed", end="", file=sys.stderr, flush=True)
        res = db.repair_duplicates(config, survey, progress=progress)
        if not args.quiet and res["ids_affected"] >= 100:
            print(file=sys.stderr)
        out.append(res)
    print(json.dumps(out))
    return 0


def _migrate(config, args) -> int:
    from tqdm import tqdm

    from kowalski import db

    bars: dict = {}

    def progress(coll, done, total):
        if args.quiet:
            return
        bar = bars.get(coll)
        if bar is None:
            bar = bars[coll] = tqdm(total=total, unit="doc", desc=f"healpix {coll}")
        bar.update(done - bar.n)

    res = db.migrate_positions(config, args.collection or None, progress=progress)
    for bar in bars.values():
        bar.close()
    print(json.dumps(res))
    return 0


def register(sub) -> None:
    p = sub.add_parser("db", help="ensure the archive's collections and indexes, or repair repeated alerts")
    dsub = p.add_subparsers(dest="db_action", required=True)
    d = dsub.add_parser("ensure", help="create missing collections and indexes (idempotent)")
    d.add_argument("--survey", action="append", help="survey(s) (default: all configured)")
    d.set_defaults(func=cmd_db)
    d = dsub.add_parser("migrate", help="add HEALPix pixel ids to an existing archive and its catalogs, "
                                        "then their index (resumable)")
    d.add_argument("--collection", action="append", help="collection(s) (default: alerts and every catalog)")
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=cmd_db)
    d = dsub.add_parser("repair", help="remove repeated alerts (the first stored is kept), then build the unique index")
    d.add_argument("--survey", action="append", help="survey(s) (default: all configured)")
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=cmd_db)
