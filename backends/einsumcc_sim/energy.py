"""Energy: the architecture file's per-action energies, where each comes from, and the
energy of a run by component.

An architecture's ``[energy]`` table gives pJ per action (DRAM and global-buffer accesses
of ``*_access_bits``, and per array ``mac``, ``add``, ..., ``rf_read``, ``rf_write``).  Two
optional tables ride along:

* ``[energy.source]`` mirrors it with a string per field saying where the figure comes
  from (tool, version, inputs).  The presets fill it for every field
  (``tests/sim/test_energy_sources.py``); ``benchmarks/energy_tables.py`` regenerates the
  CACTI figures.
* ``[energy.calibrated]`` holds figures fitted to measured totals (the FuseMax presets:
  ``einsumcc_fusemax.calibration``) and a ``source``; they replace the sourced ones only
  when ``energy.model = "calibrated"`` (``--set energy.model=calibrated``), and every
  report made with them says so.

>>> t = {"buffer_read": 2.0, "model": "calibrated", "source": {"buffer_read": "CACTI"},
...      "calibrated": {"buffer_read": 1.0, "source": "a fit"}}
>>> values, model, sources = select(t, "<doc>")
>>> values, model, sources
({'buffer_read': 1.0}, 'calibrated', (('buffer_read', 'a fit'),))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from einsumcc.diagnostics import EinError

MODELS = ("sourced", "calibrated")
LABELS = {
    "sourced": "sourced (artifact table and CACTI 7; nothing fitted)",
    "calibrated": "CALIBRATED (buffer and 2D register-file energies fitted to the FuseMax "
    "artifact's energy rows)",
}
_META = ("model", "source", "calibrated")


def label(model: str) -> str:
    """How an output names the energy model it used."""
    return LABELS.get(model, model)


def _leaves(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in table.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def select(
    table: Mapping[str, Any], source: str
) -> tuple[dict[str, Any], str, tuple[tuple[str, str], ...]]:
    """The energy table to use (the meta tables removed, the calibrated figures in place
    when ``model = "calibrated"``), the model's name, and the source of each field."""
    model = table.get("model", "sourced")
    if model not in MODELS:
        raise EinError.plain(
            f"{source}: energy.model: expected one of {', '.join(MODELS)}, got {model!r}"
        )
    values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in table.items()
              if k not in _META}  # fmt: skip
    srcs = table.get("source", {})
    if not isinstance(srcs, dict):
        raise EinError.plain(f"{source}: energy.source: expected a table of strings")
    sources = {k: str(v) for k, v in _leaves(srcs)}
    if model == "calibrated":
        cal = table.get("calibrated")
        if not isinstance(cal, dict):
            raise EinError.plain(
                f"{source}: energy.model = 'calibrated', but [energy.calibrated] is missing",
                hint="the sourced model needs no fit: energy.model = 'sourced'",
            )
        how = str(cal.get("source", "fitted"))
        for key, v in _leaves({k: v for k, v in cal.items() if k != "source"}):
            parts = key.split(".")
            node = values
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            if parts[-1] not in node:
                raise EinError.plain(
                    f"{source}: energy.calibrated.{key}: no such energy to replace"
                )
            node[parts[-1]] = v
            sources[key] = how
    return values, str(model), tuple(sorted(sources.items()))


def breakdown(
    energy: Mapping[str, float], counters: Mapping[str, float], itemsize: int
) -> dict[str, float]:
    """pJ by component (``2d.mac``, ``2d.rf``, ``1d.exp``, ``buffer``, ``dram``, ...) of a
    run's counters (``act.<array>.<action>``, DRAM bytes, buffer words) and the flattened
    energy table (``array2d.mac``, ``buffer_read``, ...)."""
    out: dict[str, float] = {}
    for key, n in counters.items():
        if key.startswith("act."):
            _, arr, act = key.split(".", 2)
            pj = energy.get(f"{arr}.{act}", 0.0)
            short = "2d" if arr == "array2d" else "1d"
            comp = f"{short}.rf" if act.startswith("rf_") else f"{short}.{act}"
            out[comp] = out.get(comp, 0.0) + n * pj
    dbits = energy["dram_access_bits"]
    out["dram"] = (
        counters.get("dram.read_bytes", 0) * 8 / dbits * energy["dram_read"]
        + counters.get("dram.write_bytes", 0) * 8 / dbits * energy["dram_write"]
    )
    bbits = energy["buffer_access_bits"]
    writes = counters.get("buffer.write_words", 0) + counters.get("buffer.fill_words", 0)
    out["buffer"] = (
        counters.get("buffer.read_words", 0) * itemsize * 8 / bbits * energy["buffer_read"]
        + writes * itemsize * 8 / bbits * energy["buffer_write"]
    )
    return out
