"""Architecture files: a TOML description of the accelerator, validated into a frozen ``Arch``.

An architecture has a clock, a 2D PE array (rows, cols, registers per PE, dataflows, ops), an
optional 1D PE array coupled to the 2D array's bottom edge (PEs, registers, ops), a global
buffer (bytes, banks, row width, ports), DRAM (bytes/s), the link between the arrays, an energy
table (pJ per action) and, optionally, areas.  An *op* of the cascade (``mac``, ``add``,
``exp``, ...) costs a PE a list of *actions* (``exp = {mac = 6, add = 1}`` on FuseMax), run one
after another: 7 cycles and the energy of 6 MACs and 1 add.

Presets ship with the package (``fusemax``, ``flat``, ``systolic``); ``--set key=value``
overrides any field of the file before validation, e.g. ``array2d.rows=128``.

>>> a = load_arch("systolic", ["array2d.rows=32", "array2d.dataflow=ws"])
>>> (a.array2d.rows, a.array2d.cols, a.array2d.dataflow)
(32, 128, 'ws')
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from einsumcc.diagnostics import EinError, Source
from einsumcc_sim import energy as sim_energy
from einsumcc_sim.names import ARCH_PRESETS
from einsumcc_sim.tomlspan import located, parse, read

PRESETS = ARCH_PRESETS
DATAFLOWS = ("os", "ws", "is")
ISSUES = ("sequential", "pipelined")
REDUCES = ("chain", "tree")
# ops a cascade can need (einsumcc.analysis.cost categories plus the functions, and the v2
# comparisons, logic, select and power of einsumcc_sim.kernel.count_ops)
KNOWN_OPS = (
    "mac",
    "mul",
    "add",
    "max",
    "div",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "tanh",
    "sigmoid",
    "relu",
    "abs",
    "cmp",
    "and",
    "or",
    "not",
    "select",
    "pow",
)


@dataclass(frozen=True)
class OpCost:
    """What one op costs a PE: actions (for energy) and cycles (for time)."""

    actions: tuple[tuple[str, int], ...]
    cycles: int


@dataclass(frozen=True)
class ArrayArch:
    kind: str  # "2d" | "1d"
    rows: int
    cols: int  # 1D: the number of PEs
    registers: int
    ops: tuple[tuple[str, OpCost], ...]
    dataflow: str = "os"
    dataflows: tuple[str, ...] = DATAFLOWS
    # sequential: a PE runs a point's actions one after another (cycles = their sum);
    # pipelined: each functional unit takes a new point every cycle (cycles = the busiest unit)
    issue: str = "sequential"
    # how partial results of a spatial reduction meet: one PE to the next per cycle (chain),
    # or through a reduction tree (log2 of the PEs cycles)
    reduce: str = "chain"

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    def op(self, name: str) -> OpCost | None:
        return dict(self.ops).get(name)

    def supports(self, ops: Sequence[str]) -> bool:
        table = dict(self.ops)
        return all(o in table for o in ops)

    def point_cycles(self, ops: Sequence[tuple[str, int]]) -> int:
        """Cycles one PE spends per point of a kernel with these op counts."""
        table = dict(self.ops)
        if self.issue == "pipelined":
            units: dict[str, int] = {}
            for o, n in ops:
                cost = table.get(o)
                if cost is None:
                    continue
                for act, cnt in cost.actions:
                    units[act] = units.get(act, 0) + n * cnt
                if not cost.actions:
                    units[o] = units.get(o, 0) + n * cost.cycles
            return max(units.values(), default=0)
        return sum(n * table[o].cycles for o, n in ops if o in table)


@dataclass(frozen=True)
class BufferArch:
    bytes: int
    banks: int
    row_bits: int
    read_ports: int
    write_ports: int

    def words_per_cycle(self, word_bytes: int, write: bool) -> int:
        """Words one cycle of accesses moves: ports (at most one per bank) x row width."""
        ports = min(self.write_ports if write else self.read_ports, self.banks)
        return max(1, ports * self.row_bits // (8 * word_bytes))


@dataclass(frozen=True)
class Arch:
    name: str
    source: str  # file it came from
    clock_hz: int
    array2d: ArrayArch
    array1d: ArrayArch | None
    buffer: BufferArch
    dram_bandwidth: int  # bytes/s
    dram_latency: int  # cycles
    link_latency: int
    energy: tuple[tuple[str, float], ...]  # flattened: "array2d.mac", "dram_read", ...
    area: tuple[tuple[str, float], ...] = ()
    energy_model: str = "sourced"  # or "calibrated" (einsumcc_sim.energy)
    energy_sources: tuple[tuple[str, str], ...] = ()  # field -> where its figure comes from

    def array(self, kind: str) -> ArrayArch:
        if kind == "2d":
            return self.array2d
        if self.array1d is None:
            raise EinError.plain(f"architecture {self.name} has no 1D array")
        return self.array1d

    def dram_cycles(self, nbytes: int) -> int:
        """Cycles to move ``nbytes`` at the DRAM bandwidth (rounded up)."""
        if nbytes <= 0:
            return 0
        return -(-nbytes * self.clock_hz // self.dram_bandwidth) + self.dram_latency

    def energy_of(self, action: str) -> float:
        return dict(self.energy).get(action, 0.0)


# ---------------------------------------------------------------- loading


def preset_text(name: str) -> str:
    return resources.files("einsumcc_sim.presets").joinpath(f"{name}.toml").read_text("utf-8")


def load_arch(spec: str | Path = "fusemax", overrides: Sequence[str] = ()) -> Arch:
    """A preset by name or a TOML file by path, with ``key=value`` overrides applied."""
    if isinstance(spec, str) and spec in PRESETS:
        source, text = f"<preset {spec}>", preset_text(spec)
    else:
        path = Path(spec)
        if not path.is_file():
            raise EinError.plain(
                f"--arch {spec}: no such preset or file", hint="presets: " + ", ".join(PRESETS)
            )
        src = read(path, "--arch")
        source, text = src.name, src.text
    src = Source(source, text)
    raw = parse(text, src)
    raw = apply_overrides(raw, overrides, source)
    try:
        return validate_arch(raw, source)
    except EinError as err:
        set_keys = frozenset(o.partition("=")[0].strip() for o in overrides)
        raise located(err, src, set_keys) from None


def _parse_value(text: str) -> Any:
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], source: str) -> dict[str, Any]:
    """``["array2d.rows=128", "dram.bandwidth=1e12"]`` applied to the raw TOML table.

    A key must exist, except inside the open tables (``*.ops``, ``energy.*``, ``area``),
    where ``--set array1d.ops.exp={exp=1}`` adds an entry.
    """
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EinError.plain(
                f"--set {item}: expected KEY=VALUE", hint="for example --set array2d.rows=128"
            )
        parts = key.split(".")
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if not isinstance(nxt, dict):
                here = ".".join(parts[: i + 1])
                tables = sorted(k for k, v in node.items() if isinstance(v, dict))
                raise EinError.plain(
                    f"--set {key}: {source} has no table '{here}'",
                    hint="tables there: " + ", ".join(tables),
                )
            node = nxt
        leaf = parts[-1]
        open_table = parts[0] in {"energy", "area"} or (len(parts) > 1 and parts[-2] == "ops")
        if leaf not in node and not open_table and not (len(parts) == 1 and leaf in _TOP_KEYS):
            raise EinError.plain(
                f"--set {key}: {source} has no key '{key}'",
                hint="keys there: " + ", ".join(sorted(node)),
            )
        node[leaf] = _parse_value(value)
    return raw


_TOP_KEYS = ("version", "name", "clock_hz")
_TABLES = ("energy", "array2d", "array1d", "buffer", "dram", "link", "area", "ops")
_MISSING_HINT = "an architecture file sets what docs/simulator.md shows; start from a preset"


class _Reader:
    """Typed access to one TOML table with errors that name the file and the key."""

    def __init__(self, table: Mapping[str, Any], prefix: str, source: str) -> None:
        self.t = table
        self.prefix = prefix
        self.source = source
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, message: str, hint: str | None = None) -> EinError:
        return EinError.plain(f"{self.source}: {self.key(name)}: {message}", hint=hint)

    def get(self, name: str, default: Any = ...) -> Any:
        self.used.add(name)
        if name not in self.t:
            if default is ...:
                where = f"[{self.prefix.rstrip('.')}]" if self.prefix else "the file"
                what = "table" if name in _TABLES else "key"
                raise self.fail(
                    name, f"missing: {where} has no {what} '{name}'", hint=_MISSING_HINT
                )
            return default
        return self.t[name]

    def int(self, name: str, default: Any = ..., minimum: int = 1) -> int:
        v = self.get(name, default)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(name, f"expected an integer, got {v!r}")
        if v < minimum:
            raise self.fail(name, f"must be at least {minimum}, got {v}")
        return v

    def number(self, name: str, default: Any = ...) -> float:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise self.fail(name, f"expected a non-negative number, got {v!r}")
        return float(v)

    def choice(self, name: str, choices: Sequence[str], default: Any = ...) -> str:
        v = self.get(name, default)
        if v not in choices:
            raise self.fail(name, f"expected one of {', '.join(choices)}, got {v!r}")
        return str(v)

    def table(self, name: str, default: Any = ...) -> dict[str, Any]:
        v = self.get(name, default)
        if not isinstance(v, dict):
            raise self.fail(name, "expected a table")
        return v

    def done(self) -> None:
        unknown = sorted(set(self.t) - self.used)
        if unknown:
            raise self.fail(
                unknown[0], "unknown key", hint="known keys: " + ", ".join(sorted(self.used))
            )


def _ops(r: _Reader, name: str, actions: set[str]) -> tuple[tuple[str, OpCost], ...]:
    table = r.table(name)
    out = []
    for op, spec in table.items():
        key = f"{r.key(name)}.{op}"
        if op not in KNOWN_OPS:
            raise EinError.plain(
                f"{r.source}: {key}: unknown op", hint="ops: " + ", ".join(KNOWN_OPS)
            )
        if not isinstance(spec, dict) or not spec:
            raise EinError.plain(
                f"{r.source}: {key}: expected a table of actions, e.g. {{ mac = 6, add = 1 }}"
            )
        acts: list[tuple[str, int]] = []
        cycles = None
        for act, n in spec.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise EinError.plain(f"{r.source}: {key}.{act}: expected a count, got {n!r}")
            if act == "cycles":
                cycles = n
                continue
            if act not in actions:
                raise EinError.plain(
                    f"{r.source}: {key}.{act}: no energy for action '{act}'",
                    hint=f"add it to [energy.{r.prefix.rstrip('.')}]",
                )
            acts.append((act, n))
        total = sum(n for _, n in acts) if cycles is None else cycles
        if total < 1:
            raise EinError.plain(f"{r.source}: {key}: an op takes at least one cycle")
        out.append((op, OpCost(tuple(acts), total)))
    return tuple(out)


def validate_arch(raw: Mapping[str, Any], source: str) -> Arch:
    top = _Reader(raw, "", source)
    version = top.int("version", 1)
    if version != 1:
        raise top.fail("version", f"unsupported version {version}; this einsumcc reads 1")
    name = top.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise top.fail("name", f"expected a string, got {name!r}")
    clock = top.int("clock_hz")
    energy_table, energy_kind, energy_sources = sim_energy.select(top.table("energy"), source)
    energy = _Reader(energy_table, "energy.", source)
    flat: dict[str, float] = {}
    for key in ("dram_read", "dram_write", "buffer_read", "buffer_write"):
        flat[key] = energy.number(key)
    for key in ("dram_access_bits", "buffer_access_bits"):
        flat[key] = float(energy.int(key))
    per_array: dict[str, set[str]] = {}
    for arr in ("array2d", "array1d"):
        t = energy.table(arr, {})
        per_array[arr] = set(t) - {"rf_read", "rf_write"}
        for act, v in t.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise EinError.plain(f"{source}: energy.{arr}.{act}: expected pJ, got {v!r}")
            flat[f"{arr}.{act}"] = float(v)
    energy.done()

    r2 = _Reader(top.table("array2d"), "array2d.", source)
    dataflows = r2.get("dataflows", list(DATAFLOWS))
    if (
        not isinstance(dataflows, list)
        or not dataflows
        or any(d not in DATAFLOWS for d in dataflows)
    ):
        raise r2.fail("dataflows", f"expected a list drawn from {', '.join(DATAFLOWS)}")
    a2 = ArrayArch(
        "2d",
        r2.int("rows"),
        r2.int("cols"),
        r2.int("registers", 4),
        _ops(r2, "ops", per_array["array2d"]),
        r2.choice("dataflow", DATAFLOWS, "os"),
        tuple(dataflows),
        r2.choice("issue", ISSUES, "sequential"),
        r2.choice("reduce", REDUCES, "chain"),
    )
    if a2.dataflow not in a2.dataflows:
        raise r2.fail("dataflow", f"'{a2.dataflow}' is not in array2d.dataflows {dataflows}")
    r2.done()
    a1 = None
    if "array1d" in raw:
        r1 = _Reader(top.table("array1d"), "array1d.", source)
        a1 = ArrayArch(
            "1d",
            1,
            r1.int("pes"),
            r1.int("registers", 4),
            _ops(r1, "ops", per_array["array1d"]),
            issue=r1.choice("issue", ISSUES, "sequential"),
            reduce=r1.choice("reduce", REDUCES, "chain"),
        )
        r1.done()
    rb = _Reader(top.table("buffer"), "buffer.", source)
    buf = BufferArch(
        rb.int("bytes"),
        rb.int("banks", 1),
        rb.int("row_bits", 64),
        rb.int("read_ports", 1),
        rb.int("write_ports", 1),
    )
    rb.done()
    rd = _Reader(top.table("dram"), "dram.", source)
    bw = rd.number("bandwidth")
    if bw <= 0:
        raise rd.fail("bandwidth", "must be positive (bytes/s)")
    dram_latency = rd.int("latency", 0, minimum=0)
    rd.done()
    rl = _Reader(top.table("link", {}), "link.", source)
    link = rl.int("latency", 1, minimum=0)
    rl.done()
    area_t = top.table("area", {})
    area = []
    for k, v in area_t.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise EinError.plain(f"{source}: area.{k}: expected um^2, got {v!r}")
        area.append((k, float(v)))
    top.done()
    return Arch(
        name,
        source,
        clock,
        a2,
        a1,
        buf,
        round(bw),
        dram_latency,
        link,
        tuple(sorted(flat.items())),
        tuple(area),
        energy_kind,
        energy_sources,
    )
