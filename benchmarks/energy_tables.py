"""The memory energies of the simulator's presets, regenerated with CACTI 7.

Every per-access energy of ``backends/einsumcc_sim/presets/{fusemax,flat,systolic}.toml`` has
a source, recorded next to it in the preset's ``[energy.source]`` table.  Compute and DRAM
energies are the FuseMax artifact's Accelergy table (spec fusemax.md §9.5); the global buffer
and the register files are CACTI 7 at 45 nm through ``hwcomponents-cacti``, at the sizes the
preset gives (``[buffer]`` bytes, row bits and banks; ``registers`` x 16-bit words per PE)
and one read/write port: the artifact's own Accelergy/CACTI run evidently used one port (its
stale 32 MiB, 64-bit-row, 32-bank buffer reads at 484.97 pJ; CACTI with one port gives
462.65 pJ, with four 3,666 pJ).

This script recomputes the CACTI figures from the presets' sizes, prints the whole table with
the sources and compares it with the presets' values::

    python3.12 -m venv /tmp/cacti-venv
    /tmp/cacti-venv/bin/pip install hwcomponents hwcomponents-cacti
    # once, where the bundled binary does not run on this glibc:
    (cd /tmp/cacti-venv/lib/python3.12/site-packages/hwcomponents_cacti/cacti && make opt)
    /tmp/cacti-venv/bin/python benchmarks/energy_tables.py [--check]

``--check`` exits 1 when a preset's value differs from CACTI's by more than 0.01%.  Where
``hwcomponents-cacti`` is not installed (it needs Python >= 3.12; the core runs on 3.11
without it), the script says so, prints the presets' table as it is, and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESETS = Path(__file__).resolve().parent.parent / "backends" / "einsumcc_sim" / "presets"
ARCHS = ("fusemax", "flat", "systolic")
WORD_BITS = 16  # the presets' words (fp16): a register-file action moves one
NODE_NM = 45
PORTS = 1


@dataclass(frozen=True)
class Memory:
    """One CACTI SRAM: the preset's fields it prices and the inputs CACTI is given."""

    fields: tuple[str, str]  # (read, write) keys of the energy table
    size_bits: int
    width_bits: int
    banks: int

    def inputs(self) -> str:
        return (
            f"SRAM {NODE_NM} nm, size {self.size_bits // 8} B, width {self.width_bits} b, "
            f"{self.banks} banks, {PORTS} rw port"
        )


def memories(raw: dict[str, Any]) -> Iterator[Memory]:
    """The memories of one preset, sized as the preset says."""
    buf = raw["buffer"]
    yield Memory(
        ("buffer_read", "buffer_write"), buf["bytes"] * 8, buf["row_bits"], buf.get("banks", 1)
    )
    for arr in ("array2d", "array1d"):
        if arr in raw and "rf_read" in raw["energy"].get(arr, {}):
            words = raw[arr].get("registers", 4)
            yield Memory((f"{arr}.rf_read", f"{arr}.rf_write"), words * WORD_BITS, WORD_BITS, 1)


def tool_version() -> str | None:
    try:
        cacti = importlib.metadata.version("hwcomponents-cacti")
        hw = importlib.metadata.version("hwcomponents")
    except importlib.metadata.PackageNotFoundError:
        return None
    return f"CACTI 7 via hwcomponents-cacti {cacti} (hwcomponents {hw})"


def cacti(m: Memory) -> tuple[float, float]:
    """(read, write) pJ per access of ``m`` from CACTI."""
    from hwcomponents_cacti import SRAM  # type: ignore[import-not-found, unused-ignore]

    s = SRAM(
        tech_node=NODE_NM * 1e-9,
        width=m.width_bits,
        size=m.size_bits,
        n_rw_ports=PORTS,
        n_banks=m.banks,
    )
    return float(s.read_energy) * 1e12, float(s.write_energy) * 1e12


def lookup(table: dict[str, Any], key: str) -> Any:
    node: Any = table
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def fields(energy: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every numeric energy field, dotted (``array2d.mac``), outside source/calibrated."""
    for k, v in energy.items():
        if k in ("source", "calibrated", "model"):
            continue
        if isinstance(v, dict):
            yield from fields(v, f"{prefix}{k}.")
        elif not k.endswith("_bits"):
            yield f"{prefix}{k}", float(v)


def report(name: str, tool: str | None) -> tuple[list[str], int]:
    """The table of one preset, and how many of its values differ from CACTI's."""
    raw = tomllib.loads((PRESETS / f"{name}.toml").read_text("utf-8"))
    energy = raw["energy"]
    fresh: dict[str, tuple[float, str]] = {}
    if tool is not None:
        for m in memories(raw):
            for key, value in zip(m.fields, cacti(m), strict=True):
                fresh[key] = (value, f"{tool}: {m.inputs()}")
    lines = [f"[{name}]  ({PRESETS / f'{name}.toml'})",
             f"  {'field':<18} {'preset pJ':>12} {'CACTI pJ':>12}  source"]  # fmt: skip
    bad = 0
    for key, value in fields(energy):
        source = lookup(energy.get("source", {}), key) or "(no source)"
        shown = ""
        if key in fresh:
            new, _ = fresh[key]
            shown = f"{new:.6g}"
            if abs(new - value) > 1e-4 * abs(new):
                bad += 1
                shown += " DIFFERS"
        lines.append(f"  {key:<18} {value:>12.6g} {shown:>12}  {source}")
    for key, (new, source) in fresh.items():
        if lookup(energy, key) is None:
            bad += 1
            lines.append(f"  {key:<18} {'-':>12} {new:>12.6g}  {source} (missing in preset)")
    return lines, bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a preset differs from CACTI")
    args = ap.parse_args(argv)
    tool = tool_version()
    if tool is None:
        print(
            "hwcomponents-cacti is not installed here (it needs Python >= 3.12: see this "
            "script's docstring); the presets' table as it stands, nothing regenerated:"
        )
    else:
        print(f"{tool}, {NODE_NM} nm, {PORTS} read/write port, {WORD_BITS}-bit words")
    total = 0
    for name in ARCHS:
        lines, bad = report(name, tool)
        total += bad
        print("\n".join(lines))
    if tool is not None:
        print(f"{total} value(s) differ from CACTI" if total else "every memory matches CACTI")
    return 1 if args.check and total else 0


if __name__ == "__main__":
    sys.exit(main())
