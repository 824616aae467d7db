"""The paper's Figures 6-9 drawn from result rows (matplotlib, imported only here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from einsumcc.files import atomic_path
from einsumcc_fusemax.results import DESIGNS, Design, Row
from einsumcc_fusemax.workload import seq_label

_COLORS = {
    "unfused": "#9e9e9e",
    "flat": "#4c72b0",
    "cascade": "#dd8452",
    "arch": "#55a868",
    "binding": "#c44e52",
}
_EINSUM_COLORS = {
    "QK": "#4c72b0",
    "AV": "#8172b3",
    "LM": "#937860",
    "SLN": "#dd8452",
    "SLD": "#da8bc3",
    "SLNV": "#55a868",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    """Write the figure whole (a Ctrl-C leaves no partial file) and close it."""
    try:
        with atomic_path(path, "--out") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)


def _grid(by_design: Mapping[str, Sequence[Row]]) -> tuple[list[str], list[int]]:
    models: list[str] = []
    seqs: set[int] = set()
    for rows in by_design.values():
        for r in rows:
            if r.model not in models:
                models.append(r.model)
            seqs.add(r.seq)
    return models, sorted(seqs)


def _designs(by_design: Mapping[str, Sequence[Row]]) -> list[Design]:
    return [d for d in DESIGNS if d.key in by_design]


def _bars(
    by_design: Mapping[str, Sequence[Row]],
    value: Any,
    ylabel: str,
    title: str,
    path: Path,
    *,
    designs: list[Design] | None = None,
    log: bool = False,
) -> Path:
    plt = _pyplot()
    models, seqs = _grid(by_design)
    chosen = designs if designs is not None else _designs(by_design)
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models) + 1, 3.2), sharey=True)
    axes = axes if len(models) > 1 else [axes]
    width = 0.8 / max(len(chosen), 1)
    for ax, model in zip(axes, models, strict=True):
        for i, d in enumerate(chosen):
            rows = {r.seq: r for r in by_design[d.key] if r.model == model}
            xs = [j + i * width for j, s in enumerate(seqs) if s in rows]
            ys = [value(d, rows[s]) for s in seqs if s in rows]
            ax.bar(xs, ys, width, label=d.label, color=_COLORS[d.key])
        ax.set_title(model)
        ax.set_xticks([j + width * (len(chosen) - 1) / 2 for j in range(len(seqs))])
        ax.set_xticklabels([seq_label(s) for s in seqs], fontsize=8)
        ax.set_xlabel("sequence length (tokens)", fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    _save(plt, fig, path)
    return path


def figure_utilization(by_design: Mapping[str, Sequence[Row]], out: Path) -> list[Path]:
    """Fig. 6a (1D array) and Fig. 6b (2D array) utilization."""
    return [
        _bars(
            by_design,
            lambda d, r: r.util_1d,
            "1D utilization (fraction of PEs busy)",
            "Fig. 6a: 1D array utilization",
            out / "fig6a_util_1d.png",
        ),
        _bars(
            by_design,
            lambda d, r: r.util_2d,
            "2D utilization (fraction of PEs busy)",
            "Fig. 6b: 2D array utilization",
            out / "fig6b_util_2d.png",
        ),
    ]


def figure_einsums(by_design: Mapping[str, Sequence[Row]], out: Path, model: str = "BERT") -> Path:
    """Fig. 7: 2D-array utilization broken down by Einsum (one model)."""
    plt = _pyplot()
    _, seqs = _grid(by_design)
    chosen = [d for d in _designs(by_design) if d.einsums]
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.0 * len(chosen) + 1, 3.2), sharey=True)
    axes = axes if len(chosen) > 1 else [axes]
    for ax, d in zip(axes, chosen, strict=True):
        rows = {r.seq: r for r in by_design[d.key] if r.model == model}
        bottom = [0.0] * len(seqs)
        for e in d.einsums:
            ys = [dict(rows[s].per_einsum).get(e, 0.0) if s in rows else 0.0 for s in seqs]
            ax.bar(range(len(seqs)), ys, bottom=bottom, label=e, color=_EINSUM_COLORS[e])
            bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
        ax.set_title(d.label, fontsize=9)
        ax.set_xticks(range(len(seqs)))
        ax.set_xticklabels([seq_label(s) for s in seqs], fontsize=8)
        ax.set_xlabel("sequence length (tokens)", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("2D utilization (fraction of PEs busy)")
    fig.suptitle(f"Fig. 7: 2D utilization by Einsum ({model})")
    fig.tight_layout()
    path = out / "fig7_util_by_einsum.png"
    _save(plt, fig, path)
    return path


def figure_relative(by_design: Mapping[str, Sequence[Row]], out: Path) -> list[Path]:
    """Fig. 8 (speedup over unfused) and Fig. 9 (energy relative to unfused)."""
    if "unfused" not in by_design:
        return []
    base = {(r.model, r.seq): r for r in by_design["unfused"]}
    others = [d for d in _designs(by_design) if d.key != "unfused"]

    def speedup(d: Design, r: Row) -> float:
        b = base.get((r.model, r.seq))
        return b.latency / r.latency if b else 0.0

    def energy(d: Design, r: Row) -> float:
        b = base.get((r.model, r.seq))
        return r.energy / b.energy if b else 0.0

    return [
        _bars(
            by_design,
            speedup,
            "speedup over unfused (x)",
            "Fig. 8: attention speedup",
            out / "fig8_speedup.png",
            designs=others,
        ),
        _bars(
            by_design,
            energy,
            "energy relative to unfused (x)",
            "Fig. 9: attention energy",
            out / "fig9_energy.png",
            designs=others,
        ),
    ]


def draw_all(by_design: Mapping[str, Sequence[Row]], out: Path) -> list[Path]:
    paths = figure_utilization(by_design, out)
    if any(d.einsums for d in _designs(by_design)):
        models, _ = _grid(by_design)
        paths.append(figure_einsums(by_design, out, "BERT" if "BERT" in models else models[0]))
    paths.extend(figure_relative(by_design, out))
    return paths
