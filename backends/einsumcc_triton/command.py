"""``einsumcc compile`` and ``einsumcc run --target triton``: the Triton backend's command line.

Generating source needs neither torch nor triton; running the kernels does.  The command line
imports this module to build its parser for every command, so importing it must stay cheap:
numpy, sympy, torch and triton are imported only by the functions that need them.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from einsumcc.diagnostics import EinError
from einsumcc.options import parse_assignments

if TYPE_CHECKING:
    import numpy as np

    from einsumcc.ir.cascade import Cascade
    from einsumcc.schedule import Schedule
    from einsumcc_triton.tile_search import TargetCheck


def parse_tiles(values: Sequence[str] | None) -> dict[str, int]:
    """``["P=128,M0=64"]`` -> ``{"P": 128, "M0": 64}``."""
    return parse_assignments(values, "--tile", "P=128,M0=64", value="POWER_OF_TWO")


def parse_names(values: Sequence[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or ():
        out.extend(x.strip() for x in value.split(",") if x.strip())
    return tuple(out)


def add_schedule_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tile",
        action="append",
        metavar="R=N,...",
        help="tile sizes, overriding the schedule's (e.g. --tile P=128,M=64); repeatable",
    )
    p.add_argument(
        "--materialize",
        action="append",
        metavar="T,...",
        help="intermediates written to global memory between passes instead of being "
        "recomputed (the kernel splits after the pass that computes them)",
    )
    p.add_argument(
        "--split-kv",
        type=int,
        metavar="N",
        help="run the recurrence over chunks (split-KV) or the reductions over the streamed "
        "rank (split-K) as N runs combined after (1: one run; default: chosen when --dims "
        "give few programs)",
    )


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_dims: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compile",
        help="compile a cascade to fused Triton kernels (a self-contained Python module)",
        description="Compile a cascade to Triton kernels.  Without -o and --emit, the module "
        "is printed on stdout.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--target", choices=["triton"], default="triton", help="the backend")
    p.add_argument("-o", "--output", metavar="OUT.py", help="write the generated module here")
    p.add_argument(
        "--emit",
        choices=["ir", "schedule", "triton"],
        help="print this stage on stdout: the canonical IR, the schedule (with traffic when "
        "--dims bind every rank) or the Triton module",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="print what each kernel does at --dims: grid, tiles visited per loop, global "
        "memory bytes (next to the compulsory ones)",
    )
    p.add_argument("--json", action="store_true", help="with --report: as JSON")
    p.add_argument(
        "--aot",
        choices=["sm_80", "sm_90"],
        help="compile every kernel ahead of time for this GPU (no GPU needed): the query "
        "tile is the largest that compiles without a spill; with --report, add registers, "
        "spills, shared memory, wgmma/mma counts and compile time",
    )
    add_dims(p)
    add_schedule_options(p)
    return p


def cmd_compile(
    args: argparse.Namespace,
    load: Callable[[str], Cascade],
    parse_dims: Callable[[Sequence[str] | None], dict[str, int]],
) -> int:
    from einsumcc.ir.dump import render_cascade
    from einsumcc.schedule import render_schedule, traffic_for
    from einsumcc_triton import compile_schedule

    dims = parse_dims(args.dims)
    tiles = parse_tiles(args.tile)
    materialize = parse_names(args.materialize)
    checked = None
    if getattr(args, "aot", None):
        from einsumcc_triton.tile_search import search_tiles

        arch = int(args.aot.removeprefix("sm_"))
        checked, notes = search_tiles(
            load(args.file),
            dims,
            arch,
            tiles=tiles,
            materialize=materialize,
            split_kv=args.split_kv,
        )
        for w in checked.warnings:
            print(f"warning: {w}", file=sys.stderr)
        cascade = checked.cascade
        schedule = dataclasses.replace(checked.schedule, notes=notes + checked.schedule.notes)
    else:
        cascade, schedule = compile_schedule(
            load(args.file), dims, tiles=tiles, materialize=materialize, split_kv=args.split_kv
        )
    if getattr(args, "report", False):
        return report(cascade, schedule, dims, args, checked)
    source = None
    if args.output or args.emit in (None, "triton"):
        from einsumcc_triton.module import generate

        source, lowered = generate(cascade, schedule, dims)
    if args.output:
        assert source is not None
        write_output(args.output, source)
        n = len(schedule.kernels)
        print(
            f"wrote {args.output}: {lowered.launcher}(), {n} kernel{'s' if n != 1 else ''}",
            file=sys.stderr if args.emit else sys.stdout,
        )
    if args.emit == "ir":
        sys.stdout.write(render_cascade(cascade))
    elif args.emit == "schedule":
        sys.stdout.write(render_schedule(schedule, traffic_for(schedule, dims)))
    elif args.emit == "triton" or not args.output:
        assert source is not None
        sys.stdout.write(source)
    return 0


def report(
    cascade: Cascade,
    schedule: Schedule,
    dims: Mapping[str, int],
    args: argparse.Namespace,
    checked: TargetCheck | None = None,
) -> int:
    """``--report [--json] [--aot sm_XX]``."""
    import json

    from einsumcc.schedule import traffic_for
    from einsumcc.schedule.summary import render_summary, summarize

    traffic = traffic_for(schedule, dims)
    if traffic is None:
        raise EinError.plain(
            "--report needs the extent of every rank",
            hint="bind the free ranks with --dims, e.g. --dims M=4096,P=4096",
        )
    data = summarize(schedule, traffic)
    if checked is not None:
        add_aot(data, checked)
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(render_summary(data))
    return 0


def add_aot(data: dict[str, Any], checked: TargetCheck) -> None:
    """Each kernel's AOT figures under ``aot`` (see :mod:`einsumcc_triton.tile_search`)."""
    for entry, st in zip(data["kernels"], checked.stats, strict=True):
        entry["aot"] = {
            "target": f"sm_{st.arch}",
            "spill_bytes": st.spills,  # bytes of spill stores and loads (ptxas -v)
            "wgmma": st.wgmma,
            "mma": st.mma,
            "shared_bytes": st.shared_bytes,
            "registers": st.registers,
            "compile_s": round(st.compile_seconds, 3),
            "num_warps": st.num_warps,
            "num_stages": st.num_stages,
        }


def write_output(output: str, source: str) -> None:
    """``compile -o``: write the module atomically (a temporary file next to ``output``,
    renamed over it), so an interrupted run never leaves a partial file; a symbolic link or
    a device (``-o /dev/stdout``) is written through instead, as the shell's ``> output``
    would.  Any failure is an :class:`EinError` naming the path."""
    from einsumcc_triton.files import shown, write_atomic, write_through

    path = Path(output)
    try:
        if output.endswith(("/", os.sep)) or path.is_dir():
            raise EinError.plain(
                f"cannot write {shown(output)}: it names a directory",
                hint=f"give -o the path of the file to write, e.g. -o {shown(path / 'kernels.py')}",
            )
        try:
            st: os.stat_result | None = path.lstat()
        except FileNotFoundError:
            st = None
        data = source.encode("utf-8")
        if st is None or stat.S_ISREG(st.st_mode):
            write_atomic(path, data, sync=True)
        else:  # a link or a device (-o /dev/stdout): written through, as `> path` would
            write_through(path, data)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte or lone surrogate in a path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        hint = None
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            hint = "use a shorter path"
        elif isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            hint = "the directory of the output must exist"
        elif isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "write somewhere you can write to"
        raise EinError.plain(f"cannot write {shown(output)}: {reason}", hint=hint) from None


def run_triton(
    cascade: Cascade,
    inputs: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    tiles: Mapping[str, int],
    materialize: Sequence[str],
    split_kv: int | None = None,
) -> dict[str, np.ndarray]:
    """Compile with the command line's ``--dims`` and run on ``inputs`` (the interpreter
    when there is no GPU)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
        raise EinError.plain(
            "--target triton needs torch and triton, which are not installed",
            hint="pip install 'einsumcc[triton]', or run with --target oracle",
        )
    import einsumcc_triton

    compiled = einsumcc_triton.compile(
        cascade, dims, tiles=tiles, materialize=materialize, split_kv=split_kv
    )
    return compiled.run_numpy(inputs)
