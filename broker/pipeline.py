"""The per-alert processing kernel: bytes -> enriched documents (CPU) -> database (I/O).

``process_messages`` is CPU work, picklable in and out, and runs on Dask worker processes; each
process keeps its survey objects, parsed schemas, ONNX sessions and cross-match catalogs in a
cache keyed by the relevant part of the config. It writes nothing (it only reads catalog
counts, to notice a changed catalog). ``store_batch`` does the durable writes from the
consumer's thread. ``ingest_files`` runs both on files, without Kafka (tests, backfills, demos).
"""

from __future__ import annotations

import json
import logging
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from kowalski.errors import AlertError
from broker.stages import store as store_stage
from broker.stages.crossmatch import CrossMatcher
from broker.stages.decode import decode
from broker.stages.ml import Classifier
from broker.stages.mongify import mongify
from kowalski.surveys import get_survey

log = logging.getLogger("kowalski.broker.pipeline")


@dataclass
class BatchResult:
    """What ``process_messages`` hands back (plain, picklable data).

    ``alerts[k]`` is an alert document ready for ``<PREFIX>_alerts`` (cutouts, ``coordinates``,
    ``classifications``, int64 ``candid``); ``history[k]`` its ``{"prv_candidates": [...],
    "fp_hists": [...]}`` for the aux collection; ``cross_matches[k]`` its {catalog: [matches]}
    (empty without configured catalogs; stored only for an object's first alert); ``sources[k]`` the index of the message it came
    from (a container may hold several alerts). ``failed`` lists ``(message index, reason)`` for
    messages that produced nothing; ``ml_skipped`` lists ``(alert index, reason)`` for alerts
    stored without (some) scores. ``timings`` are seconds per stage for the whole batch.
    """

    survey: str
    n_messages: int
    alerts: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    cross_matches: list[dict] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    ml_skipped: list[tuple[int, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: after ``store_batch``: each object's aux document as stored, for the filter step
    aux: dict[str, dict] = field(default_factory=dict)

    @property
    def failures(self) -> list[tuple[int, str]]:
        return self.failed

    def precomputed_crossmatch(self) -> store_stage.Crossmatch:
        """The store step's cross-match callable, answering from ``cross_matches``."""
        by_alert = {id(a): m for a, m in zip(self.alerts, self.cross_matches)}
        return lambda alerts: [by_alert.get(id(a), {}) for a in alerts]


class Kernel:
    """Per-process state for one survey and config: the survey, its classifier and cross-matcher."""

    def __init__(self, survey_name: str, config: Mapping):
        self.survey = get_survey(survey_name, config)
        self.classifier = Classifier.from_config(config, self.survey)
        self.crossmatcher = CrossMatcher(config, self.survey.name)

    def warm(self) -> None:
        """Open the catalogs now (KD-trees built), not on the first alert's clock."""
        self.crossmatcher.warm()


_kernels: dict[str, Kernel] = {}
_kernels_lock = threading.Lock()


def _cache_key(survey_name: str, config: Mapping) -> str:
    name = survey_name.lower()
    relevant = {
        "survey": name,
        "surveys": (config.get("surveys") or {}).get(name),
        "ml": (config.get("ml") or {}).get(name),
        "crossmatch": (config.get("crossmatch") or {}).get(name),
        "database": (config.get("database") or {}).get("name"),
        "data": (config.get("paths") or {}).get("data"),
        "root": config.get("_root"),
    }
    return json.dumps(relevant, sort_keys=True, default=str)


def get_kernel(survey_name: str, config: Mapping) -> Kernel:
    key = _cache_key(survey_name, config)
    kernel = _kernels.get(key)
    if kernel is None:
        with _kernels_lock:
            kernel = _kernels.get(key)
            if kernel is None:
                kernel = _kernels[key] = Kernel(survey_name, config)
    return kernel


def warm_kernel(survey_name: str, config: Mapping) -> None:
    """Run on each Dask worker at broker start (models loaded, catalogs opened)."""
    get_kernel(survey_name, config).warm()


def process_messages(survey_name: str, messages: Sequence[bytes], config: Mapping,
                     aux_history: Mapping[str, Sequence[Mapping]] | None = None) -> BatchResult:
    """Decode, mongify, classify and cross-match a batch of Kafka message values (no writes).

    ``aux_history`` (optional): stored prv_candidates per object id, for the history features
    of the ML models; without it they use the packets' own history (as ZTF packets carry 30 days).
    """
    kernel = get_kernel(survey_name, config)
    survey = kernel.survey
    result = BatchResult(survey=survey.name, n_messages=len(messages))
    t0 = time.perf_counter()
    packets: list[dict] = []
    for i, data in enumerate(messages):
        try:
            records = decode(data, survey)
        except AlertError as exc:
            result.failed.append((i, exc.reason))
            continue
        except Exception as exc:  # a decoder bug must not take the batch's good alerts down
            log.exception("unexpected error decoding message %d of a %s batch", i, survey.name)
            result.failed.append((i, f"unexpected decode error: {type(exc).__name__}: {exc}"))
            continue
        packets.extend(records)
        result.sources.extend([i] * len(records))
    t1 = time.perf_counter()
    result.alerts, result.history = mongify(packets, survey)
    t2 = time.perf_counter()
    timings: dict[str, float] = {}
    result.ml_skipped = kernel.classifier.classify(result.alerts, result.history, aux_history, timings)
    t3 = time.perf_counter()
    result.cross_matches = kernel.crossmatcher(result.alerts)
    t4 = time.perf_counter()
    result.timings = {"decode": t1 - t0, "mongify": t2 - t1, "ml": t3 - t2, **timings, "crossmatch": t4 - t3}
    for i, reason in result.failed:
        log.warning("%s message %d rejected: %s", survey.name, i, reason)
    return result


def store_batch(config: Mapping, survey_name: str, result: BatchResult,
                crossmatch: store_stage.Crossmatch | None = None) -> dict:
    """Durably write a processed batch; returns {inserted, duplicates, aux_new, aux_updated}."""
    survey = get_survey(survey_name, config)  # not the kernel: the writer needs no ML models
    t0 = time.perf_counter()
    if crossmatch is None:
        crossmatch = result.precomputed_crossmatch()
    counts = store_stage.store(config, survey, result.alerts, result.history, crossmatch, merged=result.aux)
    log.info("stored %s batch: %d alerts, inserted=%d duplicates=%d aux_new=%d aux_updated=%d failed=%d "
             "ml_skipped=%d decode=%.3fs mongify=%.3fs ml=%.3fs store=%.3fs", survey.name, len(result.alerts),
             counts["inserted"], counts["duplicates"], counts["aux_new"], counts["aux_updated"],
             len(result.failed), len(result.ml_skipped), result.timings.get("decode", 0.0),
             result.timings.get("mongify", 0.0), result.timings.get("ml", 0.0), time.perf_counter() - t0)
    return counts


# --- files ---------------------------------------------------------------------------------------

def iter_alert_files(paths: str | Path | Iterable[str | Path]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every alert file: ``.avro`` files, folders of them (recursively, sorted),
    and ``.tar``/``.tar.gz``/``.tgz`` archives of them (in archive order)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                if f.suffix == ".avro":
                    yield str(f), f.read_bytes()
                elif _is_tar(f):
                    yield from _iter_tar(f)
        elif _is_tar(p):
            yield from _iter_tar(p)
        elif p.is_file():
            yield str(p), p.read_bytes()
        else:
            raise FileNotFoundError(f"no such alert file or folder: {p}")


def _is_tar(p: Path) -> bool:
    name = p.name.lower()
    return name.endswith((".tar.gz", ".tgz", ".tar"))


def _iter_tar(p: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(p, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".avro"):
                f = tar.extractfile(member)
                if f is not None:
                    yield f"{p}:{member.name}", f.read()


def ingest_files(config: Mapping, survey_name: str, paths, crossmatch: store_stage.Crossmatch | None = None,
                 batch_size: int = 256) -> dict:
    """Process and store alert files (no Kafka). Returns {messages, inserted, duplicates,
    aux_new, aux_updated, failed, ml_skipped}; rejected files are logged with their reason."""
    from kowalski import db

    db.ensure_indexes(config, [get_survey(survey_name, config).name])
    totals = {"messages": 0, "inserted": 0, "duplicates": 0, "aux_new": 0, "aux_updated": 0, "failed": 0,
              "ml_skipped": 0}
    batch: list[tuple[str, bytes]] = []

    def flush():
        if not batch:
            return
        result = process_messages(survey_name, [data for _, data in batch], config)
        for i, reason in result.failed:
            log.warning("%s: rejected: %s", batch[i][0], reason)
        counts = store_batch(config, survey_name, result, crossmatch=crossmatch)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        totals["messages"] += len(batch)
        totals["failed"] += len(result.failed)
        totals["ml_skipped"] += len({i for i, _ in result.ml_skipped})
        batch.clear()

    for item in iter_alert_files(paths):
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    flush()
    return totals
