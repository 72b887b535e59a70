"""An object's history in ``<SURVEY>_alerts_aux``: prv_candidates and fp_hists, merged.

Choices (Kowalski-compatible where Kowalski defines the behaviour):

* prv_candidates: ``None`` values stripped; one entry per identity, identity = the survey's
  ``prv_key`` (ZTF: ``candid`` for detections, ``(jd, fid)`` for non-detections, whose candid is
  null; LSST: ``diaSourceId``); the entry already stored wins; sorted by jd. The alert's own
  ``candidate`` is not added (Kowalski stores the packet's prv_candidates only; the candidate
  lives in the alert document).
* fp_hists, per alert (Kowalski's ``format_fp_hists``, §3.3 step 6): ``None`` and -99999
  values stripped, sorted by jd, consecutive duplicate jd dropped, ``mag``/``magerr``/``snr``/
  ``limmag3sig``/``limmag5sig`` from the flux (NaNs left out), plus ``alert_mag``/``alert_ra``/
  ``alert_dec`` of the alert that carried them.
* fp_hists, merged across alerts: one entry per jd, the one from the brightest alert (smallest
  ``alert_mag``; missing counts as -99999 as in Kowalski); on a tie the stored entry stays.
* A new object keeps its first alert's fp_hists only if ``ndethist <= 1`` or
  ``jd - jdstarthist < 30`` (else empty: a partial history). Later alerts merge theirs.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

MISSING_ALERT_MAG = -99999.0


def strip_none(entry: Mapping) -> dict:
    return {k: v for k, v in entry.items() if v is not None}


def clean_prv(prv: Iterable[Mapping], survey) -> list[dict]:
    """One packet's prv_candidates: None-stripped, de-duplicated, sorted by jd."""
    return merge_prv([], [strip_none(p) for p in prv], survey)


def merge_prv(existing: list[dict], new: Iterable[Mapping], survey) -> list[dict]:
    """Union of two prv_candidates lists (existing entries win), sorted by jd."""
    keys = {survey.prv_key(p) for p in existing}
    out = list(existing)
    added = False
    for p in new:
        key = survey.prv_key(p)
        if key not in keys:
            keys.add(key)
            out.append(dict(p))
            added = True
    if added or not _sorted_by_jd(out):
        out.sort(key=_jd)
    return out


def flux_to_mag(flux, fluxerr, zp) -> dict:
    """Kowalski's ``flux_to_mag``: magnitudes and S/N of a forced-photometry point (NaNs left out)."""
    f, e, z = (float("nan") if v is None else float(v) for v in (flux, fluxerr, zp))
    snr = f / e if e != 0 else float("nan")
    if math.isnan(snr):
        return {}
    mag = -2.5 * math.log10(f) + z if f > 0 else float("nan")
    magerr = 1.0857 * (e / f) if f != 0 else float("nan")
    lim3 = -2.5 * math.log10(3 * e) + z if e > 0 else float("nan")
    lim5 = -2.5 * math.log10(5 * e) + z if e > 0 else float("nan")
    out = {"mag": mag, "magerr": magerr, "snr": snr, "limmag3sig": lim3, "limmag5sig": lim5}
    return {k: v for k, v in out.items() if not math.isnan(v)}


def format_fp_hists(fp: Iterable[Mapping], candidate: Mapping, survey) -> list[dict]:
    """One alert's forced photometry, formatted for storage (see module docstring)."""
    sentinels = set(survey.fp_sentinels)
    entries = [{k: v for k, v in e.items() if v is not None and not (isinstance(v, (int, float))
                                                                     and v in sentinels)}
               for e in fp]
    entries = sorted((e for e in entries if "jd" in e), key=_jd)
    entries = [e for i, e in enumerate(entries) if i == 0 or e["jd"] != entries[i - 1]["jd"]]
    alert_extra = {"alert_mag": survey.alert_mag(candidate), "alert_ra": candidate.get("ra"),
                   "alert_dec": candidate.get("dec")}
    alert_extra = {k: v for k, v in alert_extra.items() if v is not None}
    flux = survey.fp_flux
    out = []
    for e in entries:
        mags = {}
        if flux is not None:
            zp = flux[2] if isinstance(flux[2], (int, float)) else e.get(flux[2])
            mags = flux_to_mag(e.get(flux[0]), e.get(flux[1]), zp)
        out.append({**e, **mags, **alert_extra})
    return out


def merge_fp(existing: list[dict], new: Iterable[Mapping]) -> list[dict]:
    """Per jd keep the entry from the brightest alert (smallest alert_mag); stored entry wins ties."""
    by_jd: dict[float, dict] = {e["jd"]: e for e in existing if "jd" in e}
    changed = len(by_jd) != len(existing)
    for e in new:
        jd = e.get("jd")
        if jd is None:
            continue
        cur = by_jd.get(jd)
        if cur is None or _alert_mag(e) < _alert_mag(cur):
            by_jd[jd] = dict(e)
            changed = True
    if not changed and _sorted_by_jd(existing):
        return existing
    return [by_jd[jd] for jd in sorted(by_jd)]


def merge_history(existing: Mapping | None, updates: list[tuple[Mapping, Mapping, bool]], survey) -> dict:
    """An object's aux history after applying alerts in jd order.

    ``existing``: the stored aux document (or None for a new object); ``updates``: for each alert
    of the object in this batch, (candidate, history from mongify, fresh) where ``fresh`` is
    False when the alert was already stored. A stale alert's prv_candidates are merged again
    (a no-op unless an earlier attempt died between the two writes) but not its fp_hists,
    so re-ingesting never changes an object: its first alert's fp cutoff stays decided.
    """
    prv = list((existing or {}).get("prv_candidates") or [])
    fp = list((existing or {}).get("fp_hists") or [])
    known = existing is not None
    for candidate, hist, fresh in updates:
        prv = merge_prv(prv, hist.get("prv_candidates") or [], survey)
        new_fp = hist.get("fp_hists") or []
        if not known:
            fp = merge_fp(fp, new_fp) if survey.keep_fp_for_new_object(candidate) else []
            known = True
        elif fresh and new_fp:
            fp = merge_fp(fp, new_fp)
    out = {"prv_candidates": prv}
    if survey.has_fp_hists or fp:
        out["fp_hists"] = fp
    return out


def _jd(entry: Mapping) -> float:
    jd = entry.get("jd")
    return float("inf") if jd is None else jd


def _sorted_by_jd(entries: list[Mapping]) -> bool:
    return all(_jd(a) <= _jd(b) for a, b in zip(entries, entries[1:]))


def _alert_mag(entry: Mapping) -> float:
    mag = entry.get("alert_mag")
    return MISSING_ALERT_MAG if mag is None else mag

