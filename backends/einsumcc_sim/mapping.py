"""Mappings: how a cascade's kernels are bound onto an architecture, as data (TOML).

A mapping has *groups* of Einsums run one after another; each group has shared temporal
``loops`` (outer → inner, ``"P:256"`` = rank P in tiles of 256, ``"M1"`` = every m1), a
pipelining ``mode`` (``sequential``: every op waits for all earlier ops; ``pipelined``: ops wait
only for their data and their array, with optional software-pipelining ``stages``;
``interleaved``: Einsums listed together in ``interleave`` alternate cycle by cycle on one
array, sharing one fill and drain).  Per Einsum: its ``array`` (``2d`` or ``1d``), the variable
spatial on the array's ``rows`` and ``cols`` (``lanes`` on the 1D array), the ``stream``ed
variables (the innermost temporal loop, outer → inner) and the ``order`` of the remaining fold
loops.  Per tensor: where it lives, ``dram``, ``buffer`` or ``registers``.

.. code-block:: toml

    [[group]]
    loops = ["P:256"]
    mode = "pipelined"
    [einsum.QK]
    array = "2d"
    rows = "m"
    cols = "p"
    stream = ["e"]
    [tensor]
    QK = "buffer"
"""

from __future__ import annotations

import re
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from einsumcc.diagnostics import EinError, Source
from einsumcc.ir.cascade import Cascade, Recurrence
from einsumcc.ir.nodes import Role, is_var_symbol
from einsumcc_sim.arch import Arch
from einsumcc_sim.kernel import PEKernel, kernels, matmul_operands
from einsumcc_sim.model import ModelOptions
from einsumcc_sim.names import MAPPING_PRESETS as MAPPING_PRESETS
from einsumcc_sim.tomlspan import located, parse, read

MODES = ("sequential", "pipelined", "interleaved", "tile-serial")
PLACES = ("dram", "stream", "buffer", "registers")
FIT = -1  # a loop tile chosen as the largest that fits the global buffer ("P:fit")


@dataclass(frozen=True)
class KernelMap:
    array: str  # 2d | 1d | none (aliases)
    rows: str | None = None
    cols: str | None = None  # the lanes on the 1D array
    stream: tuple[str, ...] = ()
    order: tuple[str, ...] = ()  # fold loops, outer → inner (defaults to the space's order)
    chunks: tuple[tuple[str, int], ...] = ()  # streamed variables taken in chunks ("M:256")
    at_last: tuple[str, ...] = ()  # run inside these loops, at their last iteration only
    loops: tuple[tuple[str, int], ...] = ()  # extra loops inside the group's, for this Einsum


@dataclass(frozen=True)
class MappingGroup:
    einsums: tuple[str, ...]  # Einsum names (their helpers follow them)
    loops: tuple[tuple[str, int], ...] = ()  # (variable, tile); tile FIT: fitted to the buffer
    mode: str = "pipelined"
    stages: tuple[tuple[str, int], ...] = ()
    interleave: tuple[tuple[str, ...], ...] = ()
    # the outer loops that iterate DRAM tiles: buffer-resident tensors hold the tile of the
    # loops inside them (None: every loop; Timeloop's DRAM level)
    dram_loops: int | None = None
    order: tuple[str, ...] = ()  # issue order of the Einsums within an epoch
    inplace: bool = False  # a result may overwrite a buffer tensor it reads last, pointwise


@dataclass(frozen=True)
class Mapping:
    name: str
    groups: tuple[MappingGroup, ...]
    kernels: tuple[tuple[str, KernelMap], ...]
    placement: tuple[tuple[str, str], ...]
    # --set overrides of the architecture that hold only under a cost model
    model_overrides: tuple[tuple[str, tuple[str, ...]], ...] = ()
    source: str | None = None  # the file it was read from (errors point into it)

    def overrides_for(self, model: str | ModelOptions) -> tuple[str, ...]:
        """The architecture overrides of the ``[model.<name>]`` table that applies."""
        key = model if isinstance(model, str) else model.overrides_key
        return dict(self.model_overrides).get(key, ())

    def kernel(self, name: str) -> KernelMap:
        return dict(self.kernels)[name]

    def place(self, tensor: str) -> str:
        return dict(self.placement)[tensor]

    def render(self) -> str:
        """The mapping as a TOML file (what ``--mapping`` reads back)."""
        out = [f"# mapping {self.name}", "version = 1", ""]
        for g in self.groups:
            out.append("[[group]]")
            out.append("einsums = [" + ", ".join(f'"{e}"' for e in g.einsums) + "]")
            loops = ", ".join(f'"{v.upper()}:{"fit" if t == FIT else t}"' for v, t in g.loops)
            out.append(f"loops = [{loops}]")
            out.append(f'mode = "{g.mode}"')
            if g.dram_loops is not None:
                out.append(f"dram_loops = {g.dram_loops}")
            if g.order:
                out.append("order = [" + ", ".join(f'"{e}"' for e in g.order) + "]")
            if g.inplace:
                out.append("inplace = true")
            if g.stages:
                out.append("stages = { " + ", ".join(f'"{k}" = {s}' for k, s in g.stages) + " }")
            if g.interleave:
                inner = ", ".join(
                    "[" + ", ".join(f'"{e}"' for e in grp) + "]" for grp in g.interleave
                )
                out.append(f"interleave = [{inner}]")
            out.append("")
        for name, m in self.kernels:
            out.append(f'[einsum."{name}"]')
            out.append(f'array = "{m.array}"')
            if m.rows:
                out.append(f'rows = "{m.rows}"')
            if m.cols:
                out.append(f'{"cols" if m.array == "2d" else "lanes"} = "{m.cols}"')
            chunk = dict(m.chunks)
            out.append(
                "stream = ["
                + ", ".join(f'"{v}:{chunk[v]}"' if v in chunk else f'"{v}"' for v in m.stream)
                + "]"
            )
            if m.at_last:
                out.append("at_last = [" + ", ".join(f'"{v.upper()}"' for v in m.at_last) + "]")
            if m.loops:
                out.append("loops = [" + ", ".join(f'"{v.upper()}:{t}"' for v, t in m.loops) + "]")
            if m.order:
                out.append("order = [" + ", ".join(f'"{v}"' for v in m.order) + "]")
            out.append("")
        out.append("[tensor]")
        out.extend(f'"{t}" = "{p}"' for t, p in self.placement)
        for model, sets in self.model_overrides:
            out.append("")
            out.append(f"[model.{model}]")
            out.append("set = [" + ", ".join(f'"{x}"' for x in sets) + "]")
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------- the default mapping


Extents = AbcMapping[str, int]  # variable → extent, when the dims are known


def _pick(
    candidates: Sequence[str],
    prefer: Sequence[str],
    extents: Extents | None = None,
    fill: int = 0,
    favour: Sequence[str] = (),
) -> str | None:
    """The preferred candidate; with extents, the one that fills the most of ``fill`` PEs,
    then one of ``favour``, then the preference, then the innermost."""
    if not candidates:
        return None
    if extents is not None:
        rank = {v: i for i, v in enumerate(prefer)}

        def key(v: str) -> tuple[int, bool, int, int]:
            n = extents.get(v, 1)
            return (
                min(n, fill) if fill else n,
                v in favour,
                -rank.get(v, len(rank)),
                candidates.index(v),
            )

        return max(candidates, key=key)
    for v in prefer:
        if v in candidates:
            return v
    return candidates[-1]


def _ordered(vars_: set[str], acc_order: Sequence[str]) -> list[str]:
    return [v for v in acc_order if v in vars_]


def _map_2d(k: PEKernel, arch: Arch, extents: Extents | None) -> KernelMap:
    a2 = arch.array2d
    dataflow, nr, nc = a2.dataflow, a2.rows, a2.cols
    ops = matmul_operands(k)
    if ops:
        a, b = ops  # SCALE-Sim: the first factor is the ifmap, the second the filter
        order_a = [str(s) for ix in a.indices for s in ix.free_symbols if is_var_symbol(s)]
        order_b = [str(s) for ix in b.indices for s in ix.free_symbols if is_var_symbol(s)]
        lhs = set(k.lhs)
        m_vars = _ordered({v for v in lhs if v in a.variables and v not in b.variables}, order_a)
        n_vars = _ordered({v for v in lhs if v in b.variables and v not in a.variables}, order_b)
        k_vars = _ordered(set(k.reduced), order_a)
        if dataflow == "os":
            rows, cols = _pick(m_vars, [], extents, nr), _pick(n_vars, [], extents, nc)
            stream = tuple(k_vars)
        elif dataflow == "ws":
            rows, cols = _pick(k_vars, [], extents, nr), _pick(n_vars, [], extents, nc)
            stream = tuple(m_vars)
        else:
            rows, cols = _pick(k_vars, [], extents, nr), _pick(m_vars, [], extents, nc)
            stream = tuple(n_vars)
        return KernelMap("2d", rows, cols, tuple(v for v in stream if v not in (rows, cols)))
    outs = list(k.lhs)
    if extents is None:
        cols = outs[-1] if outs else None
        rows = outs[-2] if len(outs) > 1 else None
    else:
        cols = _pick(outs, [], extents, nc)
        rows = _pick([v for v in outs if v != cols], [], extents, nr)
    return KernelMap("2d", rows, cols, tuple(k.reduced))


def _map_1d(
    k: PEKernel, lane_pref: Sequence[str], lanes: int, extents: Extents | None
) -> KernelMap:
    lhs = list(k.lhs)
    if extents is not None:
        # a reduced variable may take the lanes too (a spatial reduction), when it fills more
        lane = _pick(k.space, lane_pref, extents, lanes, favour=lhs)
    else:
        lane = _pick(lhs, lane_pref) if lhs else (k.space[-1] if k.space else None)
    stream = tuple(v for v in k.space if v != lane)
    return KernelMap("1d", None, lane, stream)


def default_kernel_map(
    k: PEKernel, arch: Arch, lane_pref: Sequence[str], extents: Extents | None = None
) -> KernelMap:
    """Matmul-like kernels on the 2D array (as SCALE-Sim maps a GEMM), the rest on the 1D
    array, falling back to whichever array has the ops.  With the extents known, the spatial
    variables are those that fill the most PEs."""
    if k.alias:
        return KernelMap("none")
    a2, a1 = arch.array2d, arch.array1d
    need = k.op_names
    if (k.matmul_like or a1 is None or not a1.supports(need)) and a2.supports(need):
        return _map_2d(k, arch, extents)
    if a1 is not None and a1.supports(need):
        return _map_1d(k, lane_pref, a1.pes, extents)
    have = sorted(set(dict(a2.ops)) | set(dict(a1.ops) if a1 else ()))
    raise EinError.plain(
        f"{k.origin}: no array of {arch.name} can run {', '.join(need)}",
        hint=f"{arch.name} has {', '.join(have)}; add the op to an [array*.ops] table",
    )


def default_mapping(
    cascade: Cascade,
    arch: Arch,
    extents: Extents | None = None,
    outer: Sequence[tuple[str, int]] = (),
    chunked: bool = False,
) -> Mapping:
    """A mapping for any cascade: one group; the ``outer`` loops, then a loop (tile 1) over
    each recurrence's iterative variable; tensors in DRAM (inputs, outputs) or the global
    buffer (intermediates).

    With the variables' ``extents`` (those of a ``fit`` loop: its fitted tile), the spatial
    variables are those that fill the most PEs under the loops.  ``chunked`` streams every
    variable longer than the array's rows (lanes) in chunks of that many, so that no staged
    tile spans a whole long rank.
    """
    ks = kernels(cascade)
    loops: list[tuple[str, int]] = list(outer)
    for st in cascade.stages:
        if isinstance(st, Recurrence) and (st.variable, 1) not in loops:
            loops.append((st.variable, 1))
    looped = {v for v, _ in loops}
    if extents is not None:
        extents = dict(extents)
        for v, t in loops:
            if t != FIT:
                extents[v] = min(extents.get(v, 1), t)
    pref = [v for v in _lane_preference(ks) if v not in looped]
    # the 1D lanes follow the 2D array's columns, so results pass straight down the link
    cols = [default_kernel_map(k, arch, pref, extents).cols for k in ks if k.matmul_like]
    lane_pref = [v for v in cols if v is not None and v not in looped] + pref
    maps = []
    for k in ks:
        km = default_kernel_map(k, arch, lane_pref, extents)
        if chunked and extents is not None and km.array in ("2d", "1d"):
            size = arch.array2d.rows if km.array == "2d" else (arch.array1d or arch.array2d).cols
            chunks = tuple((v, size) for v in km.stream if extents.get(v, 1) > size)
            km = replace(km, chunks=chunks)
        maps.append((k.name, km))
    group = MappingGroup(tuple(e.name for e in cascade.einsums), tuple(loops), "pipelined")
    placement = default_placement(cascade, ks)
    fitted = ([_show_loops(outer)] if outer else []) + (["chunked"] if chunked else [])
    name = "default, fitted: " + ", ".join(fitted) if fitted else "default"
    return Mapping(name, (group,), tuple(maps), placement)


def fitted_loops(cascade: Cascade) -> list[tuple[tuple[str, int], ...]]:
    """Outer loops that bring a cascade's staged tiles into the buffer.

    They run over the variables every computing Einsum keeps on its left side (``b, h, p``
    in attention), in the order of the output's ranks: the first tiles the first of them to
    fit the buffer (``B:fit``), the next iterates it one index at a time and fits the second
    (``B:1, H:fit``), and so on.
    """
    recurrences = {st.variable for st in cascade.stages if isinstance(st, Recurrence)}
    ks = [k for k in kernels(cascade) if not k.alias and not k.is_helper]
    common = set.intersection(*(set(k.lhs) for k in ks)) - recurrences if ks else set()
    order: list[str] = []
    for t in (*cascade.outputs, *cascade.tensors):
        order.extend(cascade.rank(d.rank).var for d in t.dims if cascade.rank(d.rank).var in common)
    order = list(dict.fromkeys(order))
    return [(*((u, 1) for u in order[:i]), (v, FIT)) for i, v in enumerate(order)]


Recipe = tuple[tuple[tuple[str, int], ...], bool]  # default_mapping's outer loops, chunked


def default_recipes(cascade: Cascade) -> list[Recipe]:
    """The default mappings to try, in order: no loops, then each of the fitted outer loops;
    each without, then with long streams chunked."""
    return [(outer, chunked) for outer in ((), *fitted_loops(cascade)) for chunked in (False, True)]


def _show_loops(loops: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{v.upper()}:{'fit' if t == FIT else t}" for v, t in loops)


def _lane_preference(ks: Sequence[PEKernel]) -> list[str]:
    """Variables by how many kernels keep them on the left: the 1D lanes follow the
    2D array's columns when they can."""
    count: dict[str, int] = {}
    for k in ks:
        for v in k.lhs:
            count[v] = count.get(v, 0) + 1
    return sorted(count, key=lambda v: -count[v])


def default_placement(cascade: Cascade, ks: Sequence[PEKernel]) -> tuple[tuple[str, str], ...]:
    out = []
    for t in cascade.tensors:
        out.append((t.name, "dram" if t.role in (Role.INPUT, Role.OUTPUT) else "buffer"))
    for k in ks:
        if k.is_helper:
            out.append((k.name, "buffer"))
    return tuple(out)


# ---------------------------------------------------------------- mapping files


_KINDS = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
          (list, "a list"), (dict, "a table"))  # fmt: skip


def _kind(v: object) -> str:
    """``'a string'``, ``'a table'``...: what a TOML value is, for an error message."""
    return next((name for t, name in _KINDS if isinstance(v, t)), "a date or time")


def _table(v: object, where: str, source: str, hint: str | None = None) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise EinError.plain(f"{source}: {where}: expected a table, got {_kind(v)}", hint=hint)
    return v


def _strings(v: object, where: str, source: str, example: str) -> list[str]:
    """A list of strings, or an error that shows an ``example``."""
    if not isinstance(v, list):
        raise EinError.plain(
            f"{source}: {where}: expected a list of strings, got {_kind(v)}",
            hint=f"for example {where.rpartition('.')[2]} = {example}",
        )
    for x in v:
        if not isinstance(x, str):
            raise EinError.plain(
                f"{source}: {where}: expected a list of strings, got {_kind(x)} in it",
                hint=f"for example {where.rpartition('.')[2]} = {example}",
            )
    return v


def _var(cascade: Cascade, name: Any, where: str, source: str) -> str:
    if not isinstance(name, str):
        raise EinError.plain(f"{source}: {where}: expected a rank name, got {name!r}")
    vars_ = {r.var for r in cascade.ranks}
    if name in vars_:
        return name
    if name.lower() in vars_ and name in cascade.var_ranks.values():
        return name.lower()
    raise EinError.plain(
        f"{source}: {where}: '{name}' is not a rank of {cascade.name}",
        hint="ranks: " + ", ".join(r.name for r in cascade.ranks),
    )


def _loops(cascade: Cascade, raw: Any, where: str, source: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in _strings(raw, where, source, '["P:256", "M:fit", "B"]'):
        name, _, tile = item.partition(":")
        try:
            t = FIT if tile.strip().lower() == "fit" else int(tile) if tile else 1
        except ValueError:
            t = 0
        if t == 0 or t < FIT:
            raise EinError.plain(
                f"{source}: {where}: '{item}': the tile must be a positive integer"
            )
        out.append((_var(cascade, name, where, source), t))
    return tuple(out)


def mapping_text(name: str) -> str:
    return (
        resources.files("einsumcc_sim.presets")
        .joinpath("mappings", f"{name}.toml")
        .read_text("utf-8")
    )


def load_mapping(
    spec: str | Path,
    cascade: Cascade,
    arch: Arch,
    params: AbcMapping[str, object] | None = None,
) -> Mapping:
    """A mapping preset by name or a mapping file, completed by the default mapping for
    whatever it leaves out.

    A file may declare ``[params]`` with default values; ``"${name}"`` in any string is
    replaced by the parameter (a whole-string reference keeps the parameter's type).  The
    parameters ``rows``, ``cols`` (the 2D array) and ``lanes`` (the 1D array) always exist.
    """
    if str(spec) == "default":
        return default_mapping(cascade, arch)
    if isinstance(spec, str) and spec in MAPPING_PRESETS:
        source, text = f"<mapping {spec}>", mapping_text(spec)
    else:
        path = Path(spec)
        if not path.is_file():
            raise EinError.plain(
                f"--mapping {spec}: no such preset or file",
                hint="presets: default, " + ", ".join(MAPPING_PRESETS),
            )
        src = read(path, "--mapping")
        source, text = src.name, src.text
    src = Source(source, text)
    raw = parse(text, src)
    try:
        raw = substitute_params(raw, arch, params or {}, source)
        return mapping_from_dict(raw, cascade, arch, source)
    except EinError as err:
        raise located(err, src) from None


def substitute_params(
    raw: dict[str, Any], arch: Arch, params: AbcMapping[str, object], source: str
) -> dict[str, Any]:
    defaults = raw.pop("params", {})
    if not isinstance(defaults, dict):
        raise EinError.plain(f"{source}: params: expected a table of default values")
    values: dict[str, object] = {
        "rows": arch.array2d.rows,
        "cols": arch.array2d.cols,
        "lanes": arch.array1d.cols if arch.array1d is not None else arch.array2d.cols,
    }
    values.update(defaults)
    unknown = sorted(set(params) - set(values))
    if unknown:
        raise EinError.plain(
            f"{source}: no parameter '{unknown[0]}'",
            hint="parameters: " + ", ".join(sorted(values)),
        )
    values.update(params)
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

    def sub(x: Any) -> Any:
        if isinstance(x, str):
            whole = pattern.fullmatch(x)
            if whole:
                return value(whole.group(1))
            return pattern.sub(lambda mt: str(value(mt.group(1))), x)
        if isinstance(x, list):
            return [sub(y) for y in x]
        if isinstance(x, dict):
            return {k: sub(v) for k, v in x.items()}
        return x

    def value(name: str) -> object:
        if name not in values:
            raise EinError.plain(
                f"{source}: '${{{name}}}' names no parameter",
                hint="parameters: " + ", ".join(sorted(values)),
            )
        return values[name]

    out = sub(raw)
    assert isinstance(out, dict)
    return out


def mapping_from_dict(
    raw: AbcMapping[str, Any], cascade: Cascade, arch: Arch, source: str
) -> Mapping:
    base = default_mapping(cascade, arch)
    unknown = sorted(set(raw) - {"version", "name", "group", "einsum", "tensor", "arch", "model"})
    if unknown:
        raise EinError.plain(
            f"{source}: {unknown[0]}: unknown key",
            hint="keys: version, name, params, group, einsum, tensor, model",
        )
    version = raw.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise EinError.plain(
            f"{source}: version: unsupported version {version!r}; this einsumcc reads 1"
        )
    name = raw.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise EinError.plain(f"{source}: name: expected a string, got {_kind(name)}")
    names = [e.name for e in cascade.einsums]
    raw_groups = raw.get("group", [])
    if not isinstance(raw_groups, list) or any(not isinstance(g, dict) for g in raw_groups):
        bad = (
            raw_groups
            if not isinstance(raw_groups, list)
            else next(g for g in raw_groups if not isinstance(g, dict))
        )
        raise EinError.plain(
            f"{source}: group: expected [[group]] tables, got {_kind(bad)}",
            hint="each group is a table of its own under a [[group]] header",
        )
    groups = [_group(g, f"group[{gi}]", names, cascade, source) for gi, g in enumerate(raw_groups)]
    covered = [e for g in groups for e in g.einsums]
    dup = sorted({e for e in covered if covered.count(e) > 1})
    if dup:
        raise EinError.plain(f"{source}: Einsum {dup[0]} is in two groups")
    if groups and set(covered) != set(names):
        missing = [e for e in names if e not in covered]
        raise EinError.plain(f"{source}: Einsum {missing[0]} is in no group")
    return Mapping(
        name,
        tuple(groups) or base.groups,
        tuple(
            _kernel_maps(
                _table(raw.get("einsum", {}), "einsum", source, "write [einsum.NAME] tables"),
                base,
                cascade,
                source,
            ).items()
        ),
        tuple(
            _placement(
                _table(
                    raw.get("tensor", {}),
                    "tensor",
                    source,
                    'write [tensor] with lines like Q = "buffer"',
                ),
                base,
                source,
            ).items()
        ),
        _model_overrides(raw.get("model", {}), source),
        source if Path(source).is_file() else None,
    )


def _group(g: Any, where: str, names: list[str], cascade: Cascade, source: str) -> MappingGroup:
    """One ``[[group]]`` table."""
    bad = sorted(
        set(g) - {"einsums", "loops", "mode", "stages", "interleave", "dram_loops", "order",
                  "inplace"}
    )  # fmt: skip
    if bad:
        raise EinError.plain(f"{source}: {where}.{bad[0]}: unknown key")
    members = tuple(_strings(g.get("einsums", names), f"{where}.einsums", source, '["QK", "SN"]'))
    for e in members:
        if e not in names:
            raise EinError.plain(
                f"{source}: {where}.einsums: '{e}' is not an Einsum of {cascade.name}",
                hint="Einsums: " + ", ".join(names),
            )
    mode, stages, inter = _group_pipeline(g, where, members, source)
    loops = _loops(cascade, g.get("loops", []), f"{where}.loops", source)
    dram_loops = g.get("dram_loops")
    if dram_loops is not None and (
        not isinstance(dram_loops, int) or not 0 <= dram_loops <= len(loops)
    ):
        raise EinError.plain(
            f"{source}: {where}.dram_loops: expected a count of outer loops, 0 to {len(loops)}"
            f", got {dram_loops!r}"
        )
    order = tuple(_strings(g.get("order", []), f"{where}.order", source, '["QK", "SN"]'))
    for e in order:
        if e not in members:
            raise EinError.plain(f"{source}: {where}.order: '{e}' is not a member")
    inplace = g.get("inplace", False)
    if not isinstance(inplace, bool):
        raise EinError.plain(f"{source}: {where}.inplace: expected true or false")
    return MappingGroup(
        members, loops, mode, tuple(sorted(stages.items())), inter, dram_loops, order, inplace
    )


def _group_pipeline(
    g: Any, where: str, members: tuple[str, ...], source: str
) -> tuple[str, dict[str, int], tuple[tuple[str, ...], ...]]:
    """A group's mode, stages and interleaved pairs."""
    mode = g.get("mode", "pipelined")
    if not isinstance(mode, str) or mode not in MODES:
        raise EinError.plain(f"{source}: {where}.mode: expected one of {', '.join(MODES)}")
    stages = _table(
        g.get("stages", {}), f"{where}.stages", source, "for example stages = { QK = 0, SN = 1 }"
    )
    for e, s in stages.items():
        if e not in members or isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise EinError.plain(
                f"{source}: {where}.stages.{e}: expected a member and a stage >= 0"
            )
    raw_inter = g.get("interleave", [])
    if not isinstance(raw_inter, list) or any(not isinstance(x, list) for x in raw_inter):
        raise EinError.plain(
            f"{source}: {where}.interleave: expected a list of pairs",
            hint='for example interleave = [["BQK", "SLNV"]]',
        )
    inter = tuple(
        tuple(_strings(x, f"{where}.interleave", source, '[["BQK", "SLNV"]]')) for x in raw_inter
    )
    if inter and mode != "interleaved":
        raise EinError.plain(f'{source}: {where}.interleave needs mode = "interleaved"')
    for pair in inter:
        if len(pair) != 2 or any(e not in members for e in pair):
            raise EinError.plain(
                f"{source}: {where}.interleave: {list(pair)}: expected two member Einsums"
            )
    if mode == "sequential" and stages:
        raise EinError.plain(f"{source}: {where}.stages: a sequential group has no stages")
    return mode, stages, inter


def _kernel_maps(
    raw: AbcMapping[str, Any], base: Mapping, cascade: Cascade, source: str
) -> dict[str, KernelMap]:
    """The ``[einsum.NAME]`` tables over the default mapping's kernel maps."""
    kmaps = dict(base.kernels)
    for name, spec in raw.items():
        if name not in kmaps:
            raise EinError.plain(
                f"{source}: einsum.{name}: no such Einsum", hint="Einsums: " + ", ".join(kmaps)
            )
        kmaps[name] = _kernel_map(spec, kmaps[name], cascade, f"einsum.{name}", source)
        # (helpers, NAME.1 and so on, keep the default binding)
    return kmaps


def _placement(raw: AbcMapping[str, Any], base: Mapping, source: str) -> dict[str, str]:
    """The ``[tensor]`` table over the default placement."""
    placement = dict(base.placement)
    for t, where in raw.items():
        if t not in placement:
            raise EinError.plain(f"{source}: tensor.{t}: no such tensor")
        if where not in PLACES:
            raise EinError.plain(f"{source}: tensor.{t}: expected one of {', '.join(PLACES)}")
        placement[t] = where
    return placement


def _model_overrides(models: Any, source: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The ``[model.NAME]`` tables: architecture overrides under a cost model."""
    if not isinstance(models, dict):
        raise EinError.plain(f"{source}: model: expected tables like [model.artifact]")
    overrides = []
    for model, table in models.items():
        sets = table.get("set", []) if isinstance(table, dict) else None
        if not isinstance(sets, list) or any(not isinstance(x, str) for x in sets):
            raise EinError.plain(
                f"{source}: model.{model}.set: expected a list of KEY=VALUE strings"
            )
        overrides.append((str(model), tuple(sets)))
    return tuple(overrides)


def _kernel_map(spec: Any, base: KernelMap, cascade: Cascade, where: str, source: str) -> KernelMap:
    if not isinstance(spec, dict):
        raise EinError.plain(f"{source}: {where}: expected a table")
    bad = sorted(
        set(spec) - {"array", "rows", "cols", "lanes", "stream", "order", "at_last", "loops"}
    )
    if bad:
        raise EinError.plain(f"{source}: {where}.{bad[0]}: unknown key")
    array = spec.get("array", base.array)
    # "none": a pure re-indexing (a view such as BK), which no array computes
    if array not in ("2d", "1d") and not (array == "none" and base.array == "none"):
        raise EinError.plain(f'{source}: {where}.array: expected "2d" or "1d"')
    out = replace(base, array=array)
    if "rows" in spec:
        out = replace(out, rows=_var(cascade, spec["rows"], f"{where}.rows", source))
    for key in ("cols", "lanes"):
        if key in spec:
            out = replace(out, cols=_var(cascade, spec[key], f"{where}.{key}", source))
    if array == "1d":
        out = replace(out, rows=None)
    if "stream" in spec:
        stream, chunks = [], []
        for item in _strings(spec["stream"], f"{where}.stream", source, '["E", "M:256"]'):
            name, _, tile = item.partition(":")
            v = _var(cascade, name, f"{where}.stream", source)
            stream.append(v)
            if tile:
                if not tile.isdigit() or int(tile) <= 0:
                    raise EinError.plain(
                        f"{source}: {where}.stream: '{item}': the chunk must be a positive integer"
                    )
                chunks.append((v, int(tile)))
        out = replace(out, stream=tuple(stream), chunks=tuple(chunks))
    if "at_last" in spec:
        out = replace(
            out,
            at_last=tuple(
                _var(cascade, v, f"{where}.at_last", source)
                for v in _strings(spec["at_last"], f"{where}.at_last", source, '["P"]')
            ),
        )
    if "loops" in spec:
        out = replace(out, loops=_loops(cascade, spec["loops"], f"{where}.loops", source))
    if "order" in spec:
        out = replace(
            out,
            order=tuple(
                _var(cascade, v, f"{where}.order", source)
                for v in _strings(spec["order"], f"{where}.order", source, '["M", "P"]')
            ),
        )
    return out
