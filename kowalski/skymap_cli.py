"""``kowalski skymap add|list|show|delete|query``: skymaps through the REST API (never the database),
so the API's validation and data rights apply.

The API is ``--api URL`` (default ``api.url``); the token is ``--token`` or ``$KOWALSKI_TOKEN``, else one
is obtained for ``--username`` (default the admin) with ``$KOWALSKI_PASSWORD`` or, for the admin,
the configured password.
"""

from __future__ import annotations

import json
import os
import sys

from kowalski.errors import CLIError


def _client(args):
    from kowalski.client import Kowalski, KowalskiError, connect
    from kowalski.config import get_config

    config = get_config()
    url = args.api_url or config["api"]["url"]
    token = args.token or os.environ.get("KOWALSKI_TOKEN")
    try:
        if token:
            return Kowalski(url, token, timeout=args.timeout)
        username = args.username or config["admin"]["username"]
        password = os.environ.get("KOWALSKI_PASSWORD")
        if password is None and username == config["admin"]["username"]:
            password = str(config["admin"]["password"])
        if password is None:
            raise CLIError(f"no password for {username}: set KOWALSKI_PASSWORD or pass --token")
        return connect(url, username=username, password=password, timeout=args.timeout)
    except KowalskiError as exc:
        raise CLIError(str(exc)) from None


def _numbers(text: str, n: int, what: str) -> list[float]:
    try:
        values = [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        values = []
    if len(values) != n:
        raise CLIError(f"{what} needs {n} numbers, not {text!r}")
    return values


def _skymap_spec(args) -> dict | None:
    given = [x for x in ("file", "url", "cone", "ellipse", "polygon", "voevent") if getattr(args, x)]
    if len(given) != 1:
        raise CLIError("give exactly one of --file, --url, --cone, --ellipse, --polygon, --voevent")
    if args.url:
        return {"url": args.url, **({"localization_name": args.name} if args.name else {})}
    if args.cone:
        ra, dec, err = _numbers(args.cone, 3, "--cone RA,DEC,ERROR")
        return {"ra": ra, "dec": dec, "error": err}
    if args.ellipse:
        ra, dec, amaj, amin, phi = _numbers(args.ellipse, 5, "--ellipse RA,DEC,AMAJ,AMIN,PHI")
        return {"localization_name": args.name or f"ellipse_{ra:.5f}_{dec:.5f}", "ra": ra, "dec": dec,
                "amaj": amaj, "amin": amin, "phi": phi}
    if args.polygon:
        pts = [_numbers(p, 2, "--polygon vertex") for p in args.polygon.split(";") if p.strip()]
        return {"localization_name": args.name or "polygon", "polygon": pts}
    return None


def _levels(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CLIError(f"--contours must be comma-separated numbers, not {text!r}") from None


def cmd_add(args) -> int:
    from kowalski.client import KowalskiError

    k = _client(args)
    spec = _skymap_spec(args)
    voevent = None
    if args.voevent:
        with open(args.voevent, encoding="utf-8") as f:
            voevent = f.read()
    try:
        answer = k.add_skymap(dateobs=args.dateobs, skymap=spec, fits=args.file, voevent=voevent,
                              contours=_levels(args.contours), triggerid=args.triggerid, aliases=args.alias,
                              name=args.name)
    except (KowalskiError, OSError) as exc:
        raise CLIError(str(exc)) from None
    data = answer.get("data") or {}
    print(f"{answer.get('message')}: {data.get('localization_name')} {data.get('dateobs')} contours {data.get('contours')}")
    return 0


def cmd_list(args) -> int:
    df = _client(args).skymaps()
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
        return 0
    if df.empty:
        print("no skymaps stored")
        return 0
    for row in df.to_dict("records"):
        areas = ", ".join(f"{lv}%: {a:.1f} deg2" for lv, a in sorted((row.get("areas_deg2") or {}).items(),
                                                                     key=lambda x: float(x[0])))
        aliases = ",".join(row.get("aliases") or []) if isinstance(row.get("aliases"), list) else ""
        print(f"{row['dateobs']}  {row['localization_name']}  {aliases}  [{areas}]")
    return 0


def _selector(args) -> dict:
    sel = {k: getattr(args, k) for k in ("dateobs", "triggerid", "alias") if getattr(args, k, None)}
    if not sel:
        raise CLIError("give one of --dateobs, --triggerid, --alias")
    return sel


def cmd_show(args) -> int:
    from kowalski.client import KowalskiError
    try:
        doc = _client(args).skymap(localization_name=args.name, **_selector(args))
    except KowalskiError as exc:
        raise CLIError(str(exc)) from None
    if not args.contours_too:
        doc["contours"] = {k: {"type": v.get("type"), "polygons": len(v.get("coordinates") or [])}
                           if k != "center" else v for k, v in (doc.get("contours") or {}).items()}
    print(json.dumps(doc, indent=2, default=str))
    return 0


def cmd_delete(args) -> int:
    from kowalski.client import KowalskiError
    sel = _selector(args)
    try:
        print(_client(args).delete_skymap(args.name, sel.get("dateobs"), sel.get("triggerid"), sel.get("alias")))
    except KowalskiError as exc:
        raise CLIError(str(exc)) from None
    return 0


def cmd_query(args) -> int:
    from kowalski.client import KowalskiError
    sel = _selector(args)
    try:
        flt = json.loads(args.filter) if args.filter else {}
        projection = json.loads(args.projection) if args.projection else None
    except json.JSONDecodeError as exc:
        raise CLIError(f"--filter/--projection must be JSON: {exc}") from None
    days = tuple(_numbers(args.days, 2, "--days FROM,TO")) if args.days else None
    try:
        df = _client(args).skymap_alerts(args.name, sel.get("dateobs"), args.contour, args.catalog, flt, projection,
                                         days, args.limit, sel.get("triggerid"),
                                         [sel["alias"]] if sel.get("alias") else None)
    except KowalskiError as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(df.to_json(orient="records"))
    else:
        cols = [c for c in ("objectId", "candid", "jd", "ra", "dec", "magpsf", "fid", "drb") if c in df.columns]
        print(df[cols].to_string(index=False) if cols and not df.empty else df.to_string())
        print(f"{len(df)} document(s) in the {args.contour}% region of {args.name}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("skymap", help="GW/GRB skymaps and the alerts inside their credible regions (via the API)")
    sub = p.add_subparsers(dest="skymap_command", required=True)

    def common(s):
        s.add_argument("--api", dest="api_url", default=None, help="the API's URL (default: api.url)")
        s.add_argument("--token", default=None, help="default: $KOWALSKI_TOKEN, else log in")
        s.add_argument("--username", default=None, help="default: the admin (password: $KOWALSKI_PASSWORD)")
        s.add_argument("--timeout", type=float, default=300.0)

    def select(s, name_required=True):
        s.add_argument("--dateobs", default=None, help="event time YYYY-MM-DDTHH:MM:SS[.ffffff]")
        s.add_argument("--triggerid", default=None)
        s.add_argument("--alias", default=None, help="e.g. LVC#S170817a")
        s.add_argument("--name", required=name_required, help="localization_name")

    s = sub.add_parser("add", help="store a skymap's credible regions")
    common(s)
    s.add_argument("--dateobs", default=None, help="event time (else from the VOEvent or the FITS DATE-OBS)")
    s.add_argument("--file", default=None, help="a FITS skymap (multi-order or flat HEALPix, optionally gzipped)")
    s.add_argument("--url", default=None, help="a skymap URL the server fetches")
    s.add_argument("--cone", default=None, help="RA,DEC,ERROR in degrees (Gaussian error circle)")
    s.add_argument("--ellipse", default=None, help="RA,DEC,AMAJ,AMIN,PHI in degrees")
    s.add_argument("--polygon", default=None, help="'ra,dec;ra,dec;ra,dec;...' in degrees")
    s.add_argument("--voevent", default=None, help="a GCN VOEvent XML file")
    s.add_argument("--name", default=None, help="localization_name (default: the file name)")
    s.add_argument("--contours", default="90", help="credible levels, e.g. 50,90 (default 90)")
    s.add_argument("--triggerid", default=None)
    s.add_argument("--alias", action="append", default=None, help="repeatable, e.g. LVC#S170817a")
    s.set_defaults(func=cmd_add)

    s = sub.add_parser("list", help="the stored skymaps")
    common(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="one stored skymap (areas, probabilities, contour summary)")
    common(s)
    select(s, name_required=False)
    s.add_argument("--contours-too", action="store_true", help="print the GeoJSON contours in full")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("delete", help="remove a stored skymap")
    common(s)
    select(s)
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("query", help="alerts (or catalog sources) inside a credible region")
    common(s)
    select(s)
    s.add_argument("--contour", type=int, default=90)
    s.add_argument("--catalog", default="ZTF_alerts")
    s.add_argument("--filter", default=None, help="a MongoDB filter as JSON")
    s.add_argument("--projection", default=None, help="a projection as JSON")
    s.add_argument("--days", default=None, help="FROM,TO days relative to the event time (on candidate.jd)")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--json", action="store_true", help="JSON records instead of a table")
    s.set_defaults(func=cmd_query)
