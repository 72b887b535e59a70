"""`kowalski bench filters`: how fast the filter engine evaluates realistic filters on real alerts.

Prints (never asserted in tests):
  * evaluations/s per core of each filter family and of their mix, on the real ZTF alerts of
    ../shared/data/alerts/kowalski/ztf_alerts (36 alerts; 24 of them carry forced photometry);
  * the cost of building filter inputs (``kowalski.filters.inputs.filter_input``);
  * the cost per alert, and alerts/s per core, with 10, 100 and 1,000 active filters (a mix of
    the families with varied thresholds, over 3 permission sets), including input building,
    per-filter error isolation and output copies as the broker does it, evaluated alert by alert
    and filter by filter over a batch (the latter keeps each filter's code hot in the CPU caches);
  * the compile time per filter version.

Filter families (``realistic_filters``):
  test        Kowalski's reference test filter (drb, not near a CLU galaxy, annotations with
              ``$avg`` over ``prv_candidates.rb``), kowalski.md §1.5;
  stationary  the fp_hists "stationary" filter of Kowalski's test suite (``$anyElementTrue``
              over ``$map`` of fp_hists), kowalski.md §10;
  fast        a fast-transient filter: ``$filter`` of recent positive detections in
              prv_candidates, ``$map`` to rise rates, ``$reduce`` to the maximum, with
              cross-match conditions (no Gaia star within a radius; CLU galaxy annotations).
CPU time is this process's (``time.process_time``): figures are per core even when other
processes share the machine; each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import random
import time
from pathlib import Path

from mql import FilterError, compile_pipeline
from kowalski.filters.inputs import filter_input

CATALOGS = ["2MASS_PSC", "AllWISE", "Gaia_DR2", "Gaia_EDR3", "Gaia_DR2_WD", "PS1_STRM", "galaxy_redshifts_20200522",
            "GALEX", "IGAPS_DR2", "LAMOST_DR5_v3", "PS1_DR1", "CLU_20190625", "NED_BetaV3", "milliquas"]
PERMISSION_SETS = [(1,), (1, 2), (1, 2, 3)]
LSST_RATE = 250.0  # alerts/s, LSST's average


# --- filters ----------------------------------------------------------------------------------

def reference_filter(drb: float = 0.9999) -> list:
    return [
        {"$match": {"candidate.drb": {"$gt": drb}, "cross_matches.CLU_20190625.0": {"$exists": False}}},
        {"$addFields": {"annotations.author": "dd", "annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
        {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1}},
    ]


def stationary_filter(drb: float = 0.5, dt: float = 0.015, snr: float = 3) -> list:
    return [
        {"$match": {"candidate.drb": {"$gt": drb}}},
        {"$addFields": {"annotations.author": "dd", "annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
        {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1, "t_now": "$candidate.jd", "fp_hists": 1}},
        {"$project": {"stationary_fp": {"$cond": {
            "if": {"$eq": [{"$type": "$fp_hists"}, "missing"]},
            "then": False,
            "else": {"$anyElementTrue": {"$map": {"input": "$fp_hists", "as": "cand", "in": {"$and": [
                {"$gt": [{"$abs": {"$subtract": ["$t_now", "$$cand.jd"]}}, dt]},
                {"$gte": ["$$cand.snr", snr]}]}}}}}}}},
        {"$match": {"stationary_fp": True}},
    ]


def fast_transient_filter(drb: float = 0.8, window: float = 10, rise: float = 0.1, sep: float = 1.5,
                          ndethist: int = 100) -> list:
    return [
        {"$match": {
            "candidate.drb": {"$gt": drb},
            "candidate.isdiffpos": {"$in": ["t", "1", "y", "Y", "T"]},
            "candidate.ndethist": {"$lte": ndethist},
            "$or": [{"cross_matches.Gaia_EDR3": {"$size": 0}},
                    {"cross_matches.Gaia_EDR3.coordinates.distance_arcsec": {"$gt": sep}}],
        }},
        {"$addFields": {"history": {"$filter": {
            "input": {"$ifNull": ["$prv_candidates", []]}, "as": "p",
            "cond": {"$and": [{"$gt": ["$$p.magpsf", None]},
                              {"$lt": [{"$subtract": ["$candidate.jd", "$$p.jd"]}, window]},
                              {"$in": ["$$p.isdiffpos", ["t", "1"]]}]}}}}},
        {"$addFields": {"rates": {"$map": {"input": "$history", "as": "p", "in": {"$divide": [
            {"$subtract": ["$$p.magpsf", "$candidate.magpsf"]},
            {"$max": [{"$subtract": ["$candidate.jd", "$$p.jd"]}, 0.01]}]}}}}},
        {"$addFields": {"max_rate": {"$reduce": {"input": "$rates", "initialValue": -99.0,
                                                 "in": {"$max": ["$$value", "$$this"]}}},
                        "n_history": {"$size": "$history"}}},
        {"$match": {"$expr": {"$or": [{"$gte": ["$max_rate", rise]}, {"$eq": ["$n_history", 0]}]}}},
        {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": {
            "max_rate": {"$round": ["$max_rate", 3]}, "n_history": "$n_history",
            "near_galaxy": {"$gt": [{"$size": {"$ifNull": ["$cross_matches.CLU_20190625", []]}}, 0]},
            "galaxy_z": {"$ifNull": [{"$first": "$cross_matches.CLU_20190625.z"}, None]}}}},
    ]


FAMILIES = {"test": reference_filter, "stationary": stationary_filter, "fast": fast_transient_filter}


def add_active_filters(config, n: int, catalog: str = "ZTF_alerts") -> None:
    """Store n active realistic filters (ids 1..n) on ``catalog``, as users would have them."""
    import datetime as dt

    from kowalski import db
    from kowalski.repositories import Filters

    filters = Filters(db.get_db(config), config)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for i, (_, perms, pipeline) in enumerate(realistic_filters(n, seed=7), start=1):
        filters.add({"filter_id": i, "group_id": 1, "catalog": catalog, "permissions": list(perms),
                     "active": True, "autosave": False, "auto_followup": {}, "update_annotations": False,
                     "active_fid": "v00001", "created_at": now, "last_modified": now,
                     "fv": [{"fid": "v00001", "pipeline": json.dumps(pipeline), "created_at": now}]})


def realistic_filters(n: int, seed: int = 0) -> list[tuple[str, tuple, list]]:
    """n (family, permissions, pipeline): the three families in turn, thresholds varied."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        family = ("test", "stationary", "fast")[i % 3]
        if family == "test":
            p = reference_filter(drb=r.choice([0.5, 0.8, 0.9, 0.95, 0.99, 0.9999]))
        elif family == "stationary":
            p = stationary_filter(drb=r.choice([0.5, 0.7, 0.9]), dt=r.choice([0.015, 0.02, 0.05]),
                                  snr=r.choice([3, 4, 5]))
        else:
            p = fast_transient_filter(drb=r.choice([0.5, 0.7, 0.8, 0.9]), window=r.choice([5, 10, 15, 30]),
                                      rise=r.choice([0.05, 0.1, 0.2, 0.5]), sep=r.choice([1.0, 1.5, 2.0]),
                                      ndethist=r.choice([20, 100, 1000]))
        out.append((family, PERMISSION_SETS[i % len(PERMISSION_SETS)], p))
    return out


# --- alerts -----------------------------------------------------------------------------------

def synthetic_cross_matches(i: int) -> dict:
    """Kowalski's catalogs, empty except a CLU galaxy for every 5th alert and a Gaia star for every
    7th (../shared/data has no catalogs to cross-match against)."""
    cm = {c: [] for c in CATALOGS}
    if i % 5 == 0:
        cm["CLU_20190625"] = [{"_id": 1000 + i, "name": f"CLU{i}", "z": 0.02 + i / 1000, "sfr_fuv": 0.5,
                               "coordinates": {"radec_str": ["00:00:00.0000", "00:00:00.000"],
                                               "distance_arcsec": 12.3, "distance_kpc": 5.1}}]
    if i % 7 == 0:
        cm["Gaia_EDR3"] = [{"_id": 5000 + i, "parallax": 2.1, "parallax_error": 0.1, "phot_g_mean_mag": 15.1,
                            "coordinates": {"radec_str": ["00:00:00.0000", "00:00:00.000"],
                                            "distance_arcsec": 0.4 + (i % 3)}}]
    return cm


def load_alerts(config) -> tuple[list[dict], list[dict]]:
    """(alert documents, aux documents) for the real ZTF sample alerts, as the broker stores them."""
    import fastavro

    from broker.stages.mongify import mongify
    from kowalski.surveys import get_survey

    data = Path(str(config["paths"]["data"]))
    if not data.is_absolute():
        data = (Path(str(config.get("_root", "."))) / data).resolve()
    files = sorted((data / "alerts" / "kowalski" / "ztf_alerts").rglob("*.avro"))
    if not files:
        raise FileNotFoundError(f"no ZTF sample alerts under {data}/alerts/kowalski/ztf_alerts")
    packets = []
    for f in files:
        with open(f, "rb") as fh:
            packets.extend(fastavro.reader(fh))
    docs, histories = mongify(copy.deepcopy(packets), get_survey("ztf", config))
    aux = [{"_id": d["objectId"], "cross_matches": synthetic_cross_matches(i), **h}
           for i, (d, h) in enumerate(zip(docs, histories))]
    return docs, aux


# --- measuring --------------------------------------------------------------------------------

def _best_rate(fn, units: int, seconds: float, repeat: int) -> float:
    """units per CPU-second of fn() (which does ``units`` units of work), best of ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        n = 0
        c0 = time.process_time()
        while True:
            fn()
            n += units
            dt = time.process_time() - c0
            if dt >= seconds:
                break
        best = max(best, n / dt)
    return best


def evaluate_alert(filters, doc, aux):
    """What the broker does per alert: inputs per permission set, every filter, errors isolated."""
    inputs = {}
    passed = 0
    errors = 0
    for perms, compiled in filters:
        inp = inputs.get(perms, False)
        if inp is False:
            inp = inputs[perms] = filter_input(doc, aux, perms)
        if inp is None:
            continue
        try:
            if compiled.passes(inp) is not None:
                passed += 1
        except FilterError:
            errors += 1
    return passed, errors


def evaluate_batch(filters, docs, auxs):
    """The same work filter by filter over a batch of alerts (inputs built once per alert and
    permission set): the order a batch-processing broker can use; it keeps each filter's code hot."""
    inputs = {}
    passed = 0
    errors = 0
    for perms, compiled in filters:
        batch = inputs.get(perms)
        if batch is None:
            batch = inputs[perms] = [filter_input(d, a, perms) for d, a in zip(docs, auxs)]
        for inp in batch:
            if inp is None:
                continue
            try:
                if compiled.passes(inp) is not None:
                    passed += 1
            except FilterError:
                errors += 1
    return passed, errors


def run(config, seconds: float = 2.0, repeat: int = 3, counts=(10, 100, 1000), seed: int = 0, out=print) -> dict:
    docs, aux = load_alerts(config)
    inputs = [filter_input(d, a, (1, 2)) for d, a in zip(docs, aux)]
    results: dict = {"alerts": len(docs)}

    out(f"kowalski bench filters — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores ({platform.machine()}), CPU time of one process (per core), best of {repeat}")
    out(f"alerts: {len(docs)} real ZTF alerts ({sum(1 for a in aux if a.get('fp_hists'))} with fp_hists), "
        f"{sum(len(a['prv_candidates']) for a in aux) / len(aux):.1f} prv_candidates per alert; "
        "cross_matches synthetic (CLU every 5th, Gaia every 7th)")

    # compile
    pipes = realistic_filters(300, seed)
    c0 = time.process_time()
    for _, _, p in pipes:
        compile_pipeline(p)
    compile_us = (time.process_time() - c0) / len(pipes) * 1e6
    results["compile_us"] = compile_us
    out(f"compile: {compile_us:.0f} µs per filter version (once per version)")

    # families
    out("")
    out(f"{'filter':<28s}{'evals/s/core':>14s}{'µs/eval':>10s}{'passes':>9s}")
    fam_rates = {}
    for name, make in FAMILIES.items():
        f = compile_pipeline(make())
        rate = _best_rate(lambda f=f: [f.passes(x) for x in inputs], len(inputs), seconds, repeat)
        npass = sum(f.passes(x) is not None for x in inputs)
        fam_rates[name] = rate
        out(f"{name + ' (default thresholds)':<28s}{rate:>14,.0f}{1e6 / rate:>10.1f}{npass:>6d}/{len(inputs)}")
    mix = [compile_pipeline(p) for _, _, p in realistic_filters(99, seed)]

    def run_mix():
        for f in mix:
            for x in inputs:
                f.passes(x)
    mix_rate = _best_rate(run_mix, len(mix) * len(inputs), seconds, repeat)
    mix_pass = sum(f.passes(x) is not None for f in mix for x in inputs) / (len(mix) * len(inputs))
    out(f"{'mix (99, varied thresholds)':<28s}{mix_rate:>14,.0f}{1e6 / mix_rate:>10.1f}{mix_pass:>8.0%}")
    results["families"] = fam_rates
    results["mix"] = mix_rate

    # inputs
    in_rate = _best_rate(lambda: [filter_input(d, a, (1, 2)) for d, a in zip(docs, aux)], len(docs), seconds,
                         repeat)
    results["input_us"] = 1e6 / in_rate
    out(f"filter input (upstream projection, one permission set): {1e6 / in_rate:.1f} µs per alert")

    # cost per alert with N active filters
    out("")
    out("(inputs built per alert and permission set, every filter run, errors isolated, outputs copied)")
    out(f"{'active filters':>14s}{'order':>16s}{'ms/alert':>10s}{'alerts/s/core':>15s}{'evals/s/core':>14s}"
        f"{'passes/alert':>14s}")
    per_n = {}
    for n in counts:
        active = [(perms, compile_pipeline(p)) for _, perms, p in realistic_filters(n, seed + n)]

        def alert_by_alert():
            for d, a in zip(docs, aux):
                evaluate_alert(active, d, a)

        def batch():
            evaluate_batch(active, docs, aux)
        passes = sum(evaluate_alert(active, d, a)[0] for d, a in zip(docs, aux)) / len(docs)
        per_n[n] = {}
        for order, fn in (("alert by alert", alert_by_alert), (f"batch of {len(docs)}", batch)):
            rate = _best_rate(fn, len(docs), max(seconds, 0.5), repeat if n < 1000 else max(1, repeat - 1))
            per_n[n][order] = {"ms_per_alert": 1e3 / rate, "alerts_per_s": rate}
            out(f"{n:>14d}{order:>16s}{1e3 / rate:>10.2f}{rate:>15,.1f}{rate * n:>14,.0f}{passes:>14.1f}")
    results["per_n"] = per_n
    if 100 in per_n:
        for order, r in per_n[100].items():
            cores = LSST_RATE / r["alerts_per_s"]
            out(f"100 active filters at LSST's average {LSST_RATE:.0f} alerts/s ({order}): {cores:.2f} cores")
        results["lsst_cores_100"] = {o: LSST_RATE / r["alerts_per_s"] for o, r in per_n[100].items()}
    return results


def bench_filters(args) -> int:
    from kowalski.config import load_config

    counts = tuple(int(x) for x in str(args.filters).split(",") if x)
    run(load_config(generate_secrets=False), seconds=args.seconds, repeat=args.repeat, counts=counts, seed=args.seed)
    return 0


def register(subparsers) -> None:
    """Add `kowalski bench filters` (the `bench` command is shared: kowalski.bench)."""
    from kowalski.bench import get_bench_subparsers

    p = get_bench_subparsers(subparsers).add_parser(
        "filters", help="filter engine: evaluations/s per core on real alerts, cost per alert for N filters")
    p.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measurement (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is printed (default 3)")
    p.add_argument("--filters", default="10,100,1000", help="active-filter counts (default 10,100,1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=bench_filters)
