"""`kowalski ...`: the command line. Errors print one clear line and exit non-zero.

Sub-commands live next to the code they drive; each module exposes ``register(subparsers)``.
The core's own are listed in CORE_COMMANDS; the components' are found through the
``kowalski.commands`` entry points of pyproject.toml, so the core names no component.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import logging
import os
import sys
import time

import yaml

from kowalski.config import ConfigError, get_config, get_path, redact
from kowalski.errors import CLIError
from kowalski.services import ServiceError, all_services, get_service

CORE_COMMANDS = ("kowalski.db_cli", "kowalski.skymap_cli")  # the core's modules with register(subparsers)
COMMANDS_GROUP = "kowalski.commands"


def component_commands() -> list:
    """The components' ``register`` functions (entry points); an install without them says so."""
    found = sorted(importlib.metadata.entry_points(group=COMMANDS_GROUP), key=lambda e: e.name)
    if not found:
        raise ConfigError(f"no {COMMANDS_GROUP!r} entry points: the package's metadata is missing or stale "
                          "(run `make`, or `pip install -e .` in the checkout)")
    return [e.load() for e in found]


def setup_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=getattr(logging, (level or os.environ.get("KOWALSKI_LOG_LEVEL", "INFO")).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


# --- services -------------------------------------------------------------------------------

def _selected(config, names):
    return [get_service(config, n) for n in names] if names else all_services(config)


def cmd_up(args) -> int:
    config = get_config()
    started = []
    t0 = time.monotonic()
    try:
        for svc in _selected(config, args.services):
            was_running = svc.embedded and svc.pid() is not None
            t = time.monotonic()
            st = svc.start()
            if svc.embedded and not was_running:
                started.append(svc)
            how = "external" if not svc.embedded else ("already running" if was_running else "started")
            print(f"{svc.name:10s} {how:16s} {st.address}  ({st.detail}; {time.monotonic() - t:.1f} s)", flush=True)
            if svc.name == "database" and config["database"].get("build_indexes", True):
                from kowalski.db import ensure_indexes
                ensure_indexes(config)
            svc.after_start()
    except (ServiceError, Exception):
        for svc in reversed(started):  # leave no stray processes behind
            svc.stop()
        raise
    print(f"up in {time.monotonic() - t0:.1f} s")
    _print_access(config)
    return 0


def _print_access(config) -> None:
    print()
    print(f"  Kafka:     {config['kafka']['bootstrap_servers']}")
    print(f"  Database:  {redact({'uri': config['database']['uri']})['uri']} (db '{config['database']['name']}')")
    print(f"  API:       {config['api']['url']}")
    print(f"  Hub:       {config['hub']['url']}  (JupyterHub: log in with a Kowalski user)")
    print(f"  Log in as '{config['admin']['username']}'; password: `kowalski config get admin.password --reveal`")
    print(f"  Logs:      kowalski logs [SERVICE]     state: {config.var_dir}")


def cmd_down(args) -> int:
    config = get_config()
    for svc in reversed(_selected(config, args.services)):
        if not svc.embedded:
            print(f"{svc.name:10s} external, left alone")
            continue
        print(f"{svc.name:10s} {'stopped' if svc.stop() else 'not running'}", flush=True)
    return 0


def cmd_status(args) -> int:
    config = get_config()
    rows = [svc.status() for svc in _selected(config, args.services)]
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        for r in rows:
            state = "healthy" if r.healthy else ("unhealthy" if r.running else "stopped")
            kind = "embedded" if r.managed else "external"
            pid = f"pid {r.pid}" if r.pid else ""
            print(f"{r.name:10s} {state:10s} {kind:9s} {r.address:32s} {pid:10s} {r.detail}")
    return 0 if all(r.healthy for r in rows) else 3


def cmd_logs(args) -> int:
    config = get_config()
    services = _selected(config, [args.service] if args.service else [])
    for svc in services:
        if len(services) > 1:
            print(f"==> {svc.name} ({svc.log_file}) <==")
        print(svc.log_tail(args.lines))
    if args.follow:
        if len(services) != 1:
            raise CLIError("--follow needs one SERVICE")
        os.execvp("tail", ["tail", "-n", "0", "-F", str(services[0].log_file)])
    return 0


# --- config ---------------------------------------------------------------------------------

def _dump(value) -> str:
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, sort_keys=False).rstrip()
    return "" if value is None else str(value)


def cmd_config(args) -> int:
    config = get_config()
    if args.action is None:
        print(_dump(config.redacted()))
        return 0
    if args.action != "get" or not args.key:
        raise CLIError("usage: kowalski config [get KEY [--reveal]]")
    try:
        value = get_path(config, args.key)
    except KeyError:
        raise CLIError(f"no config key {args.key!r}") from None
    if not args.reveal:
        value = redact({args.key.split(".")[-1]: value})[args.key.split(".")[-1]]
    print(_dump(value))
    return 0


# --- wiring ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kowalski", description="Kowalski alert broker and archive")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("up", help="start the local services (idempotent)")
    s.add_argument("services", nargs="*", metavar="SERVICE")
    s.set_defaults(func=cmd_up)
    s = sub.add_parser("down", help="stop the local services")
    s.add_argument("services", nargs="*", metavar="SERVICE")
    s.set_defaults(func=cmd_down)
    s = sub.add_parser("status", help="health of each service (exit 3 if any is unhealthy)")
    s.add_argument("services", nargs="*", metavar="SERVICE")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("logs", help="show a service's log")
    s.add_argument("service", nargs="?")
    s.add_argument("-n", "--lines", type=int, default=50)
    s.add_argument("-f", "--follow", action="store_true")
    s.set_defaults(func=cmd_logs)
    s = sub.add_parser("config", help="print the merged config (secrets redacted), or `config get KEY`")
    s.add_argument("action", nargs="?", choices=["get"])
    s.add_argument("key", nargs="?")
    s.add_argument("--reveal", action="store_true", help="print secrets in clear")
    s.set_defaults(func=cmd_config)

    for mod in CORE_COMMANDS:
        importlib.import_module(mod).register(sub)
    for register in component_commands():
        register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ConfigError as exc:
        print(f"kowalski: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except (ServiceError, ConfigError) as exc:
        print(f"kowalski: error: {exc}", file=sys.stderr)
        return 1
    except CLIError as exc:
        print(f"kowalski: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from kowalski.db import DatabaseError, DuplicateIdsError
        if isinstance(exc, DuplicateIdsError):
            print(f"kowalski: error: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, DatabaseError):
            print(f"kowalski: error: database: {str(exc).split(',')[0][:200]}; check database.uri and `kowalski status`",
                  file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("kowalski: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
