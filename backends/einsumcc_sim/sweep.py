"""Sweeps on Dask (``einsumcc sweep``): one simulation per point of a grid of rank extents.

The points run as Dask tasks, on a ``distributed.LocalCluster`` of this machine's cores or
on an existing cluster (``--scheduler tcp://host:port``, started with ``dask scheduler`` and
``dask worker``).  Every point gives one CSV row; a point that fails (an error of the
simulator, or a worker that died) gives a row with its error, and the command ends with
status 1 after writing them all.  The CSV is written whole (``einsumcc.files.atomic_path``).
"""

from __future__ import annotations

import csv
import itertools
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from einsumcc.diagnostics import EinError

COLUMNS = ("cycles", "energy_pj", "utilization_2d", "utilization_1d", "dram_bytes", "mapping")


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs: the cascade file, its architecture and mapping, and the grid."""

    file: str
    arch: str = "fusemax"
    overrides: tuple[str, ...] = ()
    base: tuple[tuple[str, int], ...] = ()  # --dims
    axes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # --sweep R=v1,v2
    mapping: str | None = None  # None: the default mapping
    search: bool = False  # --map: the mapper's best at every point
    budget: int | None = None
    seconds: float | None = None

    def points(self) -> list[dict[str, int]]:
        """The grid, the last --sweep varying fastest."""
        names = [r for r, _ in self.axes]
        out = []
        for values in itertools.product(*(v for _, v in self.axes)):
            point = dict(self.base)
            point.update(zip(names, values, strict=True))
            out.append(point)
        return out


def parse_sweeps(items: Sequence[str]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``["M=1024,4096", "P=1024"]`` as ranks and their values."""
    from einsumcc.options import parse_dims

    out: list[tuple[str, tuple[int, ...]]] = []
    for item in items:
        rank, sep, values = item.partition("=")
        if not sep or not rank.strip() or not values.strip():
            raise EinError.plain(
                f"--sweep {item}: expected RANK=v1,v2,...", hint="--sweep M=1024,4096"
            )
        ints = tuple(parse_dims([f"{rank.strip()}={v}"])[rank.strip()] for v in values.split(","))
        out.append((rank.strip(), ints))
    if not out:
        raise EinError.plain(
            "sweep needs at least one --sweep RANK=v1,v2", hint="--sweep M=1024,4096"
        )
    return tuple(out)


def simulate_point(spec: Sweep, text: str, point: Mapping[str, int]) -> dict[str, Any]:
    """One point's row (run on a Dask worker: it loads the cascade from its ``text``)."""
    from einsumcc import load
    from einsumcc_sim.api import map_cascade, simulate_cascade

    cascade = load(text)
    dims = dict(point)
    mapping: Any = spec.mapping
    found = None
    if spec.search:
        found = map_cascade(cascade, spec.arch, dims, budget=spec.budget, time=spec.seconds,
                            overrides=spec.overrides)  # fmt: skip
        mapping = _mapping_file(found.best.mapping.render())
    try:
        report = simulate_cascade(cascade, spec.arch, mapping, dims, overrides=spec.overrides)
    finally:
        if spec.search:
            Path(mapping).unlink()
    u = report.utilization
    return {
        "cycles": report.cycles,
        "energy_pj": report.energy_pj,
        "utilization_2d": u["2d"],
        "utilization_1d": u["1d"],
        "dram_bytes": report.dram_bytes,
        "mapping": report.mapping if found is None else found.best.mapping.name,
    }


def _mapping_file(text: str) -> str:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".toml", prefix="einsumcc-map-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return name


def _client(scheduler: str | None, workers: int | None, retries: bool = True) -> tuple[Any, Any]:
    """A Dask client of the cluster at ``scheduler``, or of a new local one (``retries=False``:
    a task whose worker dies fails at once with ``KilledWorker``, and Dask's own logs stay
    quiet, for callers that report the death themselves)."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise EinError.plain(
                f"--scheduler {scheduler}: cannot reach it ({exc})",
                hint="start one with: dask scheduler --port 8786",
            ) from None
    n = workers or os.cpu_count() or 1
    quiet = {} if retries else {"silence_logs": logging.CRITICAL}
    with dask.config.set({} if retries else {"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, **quiet
        )
    return Client(cluster), cluster  # type: ignore[no-untyped-call]


def run(
    spec: Sweep,
    out: str,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> int:
    """Run every point of ``spec`` and write the CSV ``out``; the count of failed points."""
    from distributed import as_completed

    from einsumcc.files import atomic_path, path_error

    text = Path(spec.file).read_text(encoding="utf-8")
    points = spec.points()
    rows: list[dict[str, Any] | None] = [None] * len(points)
    client, cluster = _client(scheduler, workers)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(points), desc="sweep", unit="point", file=sys.stderr)
    try:
        futures = {
            client.submit(simulate_point, spec, text, p, pure=False): i
            for i, p in enumerate(points)
        }
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            i = futures[fut]
            try:
                rows[i] = {**fut.result(), "error": ""}
            except Exception as exc:  # the point's error, or a worker that died
                rows[i] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    ranks = sorted({r for p in points for r in p})
    try:
        with atomic_path(out, "-o") as tmp, Path(tmp).open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=[*ranks, *COLUMNS, "error"])
            w.writeheader()
            for p, row in zip(points, rows, strict=True):
                w.writerow({**p, **(row or {"error": "not run"})})
    except OSError as exc:
        raise path_error("-o", out, exc) from None
    failed = [(p, r) for p, r in zip(points, rows, strict=True) if not r or r["error"]]
    for p, r in failed:
        shown = ",".join(f"{k}={v}" for k, v in p.items())
        print(f"error: point {shown} failed: {(r or {}).get('error', 'not run')}", file=sys.stderr)
    print(f"wrote {len(points)} points ({len(failed)} failed) to {out}", file=sys.stderr)
    return len(failed)
