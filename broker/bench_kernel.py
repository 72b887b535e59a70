"""Kernel micro-benchmark: ms per alert of each CPU part, in isolation, on the real ZTF alerts.

``kowalski bench ingest`` calls :func:`kernel_timings` and prints the figures; nothing here is
asserted in tests. Everything runs in the calling process with onnxruntime limited to one
thread (as on a Dask worker), so the figures are per core.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Mapping

import numpy as np

from broker.stages.decode import decode
from broker.stages.ml import Classifier, feature_value, prepare_triplets, run_model
from broker.stages.mongify import mongify
from kowalski.surveys import get_survey

ZTF_SAMPLES = ("alerts/kowalski/ztf_alerts",)


def _best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sample_messages(config: Mapping, n: int) -> list[bytes]:
    """``n`` real ZTF alert messages (the shared samples, repeated as needed)."""
    data = Path(str(config["paths"]["data"]))
    if not data.is_absolute():
        data = (Path(str(config.get("_root", "."))) / data).resolve()
    files = sorted(f for d in ZTF_SAMPLES for f in (data / d).rglob("*.avro"))
    if not files:
        raise FileNotFoundError(f"no ZTF sample alerts under {data}/{ZTF_SAMPLES[0]}")
    blobs = [f.read_bytes() for f in files]
    return list(itertools.islice(itertools.cycle(blobs), n))


def kernel_timings(config: Mapping, n: int = 256, batch: int | None = None, repeat: int = 3) -> dict:
    """Milliseconds per alert for: ``decode`` (Avro), ``mongify`` (coordinates, history
    formatting), ``cutouts`` (triplet preparation), ``features`` (model inputs incl. history
    features) and each configured ZTF model (one ``session.run`` per batch of ``batch`` alerts,
    default all ``n``). Best of ``repeat`` runs; also returns ``n``, ``batch`` and ``total``."""
    survey = get_survey("ztf", config)
    messages = sample_messages(config, n)
    batch = batch or n
    out: dict = {"n": n, "batch": batch}

    packets: list = []

    def do_decode():
        packets.clear()
        for m in messages:
            packets.extend(decode(m, survey))

    out["decode"] = _best_of(repeat, do_decode)

    docs: list = []
    hist: list = []

    def do_mongify():
        fresh = [decode(m, survey)[0] for m in messages]  # mongify consumes its input
        t0 = time.perf_counter()
        d, h = mongify(fresh, survey)
        docs[:], hist[:] = d, h
        return time.perf_counter() - t0

    out["mongify"] = min(do_mongify() for _ in range(repeat))

    chunks = [docs[i:i + batch] for i in range(0, len(docs), batch)]
    triplets: list = []

    def do_cutouts():
        triplets.clear()
        for c in chunks:
            triplets.append(prepare_triplets(c, survey)[0])

    out["cutouts"] = _best_of(repeat, do_cutouts)

    classifier = Classifier.from_config(config, survey)
    features: dict[str, list[np.ndarray]] = {}

    def do_features():
        derived = classifier._history_features(docs, hist, None)
        for model in classifier.models:
            arr = np.asarray([[feature_value(f, d["candidate"], x) for f in model.features]
                              for d, x in zip(docs, derived)], dtype=np.float32)
            features[model.name] = [arr[i:i + batch] for i in range(0, len(arr), batch)]

    out["features"] = _best_of(repeat, do_features)

    for model in classifier.models:
        run_model(model, triplets[0][:2], features[model.name][0][:2])  # warm-up

        def do_model(model=model):
            for trip, feat in zip(triplets, features[model.name]):
                run_model(model, trip, feat)

        out[model.name] = _best_of(repeat, do_model)

    for key, value in list(out.items()):
        if key not in ("n", "batch"):
            out[key] = value * 1000.0 / n
    out["total"] = sum(v for k, v in out.items() if k not in ("n", "batch"))
    return out


def unavoidable_ms(t: Mapping, config: Mapping) -> float:
    """The kernel bound's part of the timings: decode, cutouts and the configured ZTF models."""
    return t["decode"] + t["cutouts"] + sum(t[m] for m in config["ml"]["ztf"]["models"])


_start: object = None  # the barrier the concurrent runs wait at, set in each pool process


def _init(barrier) -> None:
    global _start
    _start = barrier


def _timed_after_barrier(config: Mapping, n: int) -> dict:
    kernel_timings(config, n=32, repeat=1)  # imports, models and samples loaded off the clock
    _start.wait()
    return kernel_timings(config, n=n)


def concurrent_kernel_timings(config: Mapping, processes: int, n: int = 256) -> list[dict]:
    """:func:`kernel_timings` in ``processes`` processes at once, started together.

    One process alone on an idle machine overstates what the cores do when all of them are busy
    (shared caches, memory bandwidth, the host's other tenants); this measures the kernel the way
    the Dask workers run it.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(barrier,)) as pool:
        futures = [pool.submit(_timed_after_barrier, config, n) for _ in range(processes)]
        return [f.result() for f in futures]


def format_kernel_timings(t: Mapping) -> str:
    parts = [f"{k} {v:.3f}" for k, v in t.items() if k not in ("n", "batch", "total")]
    return (f"kernel, ms per alert (n={t['n']}, batch={t['batch']}, 1 thread): " + ", ".join(parts)
            + f"; total {t['total']:.2f} ms")
