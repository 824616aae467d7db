"""The workloads of the FuseMax evaluation: models, sequence lengths, and FLAT's searched dataflows.

>>> [m.name for m in load_models("BERT,XLM")]
['BERT', 'XLM']
>>> parse_seq("1K,256K")
(1024, 262144)
>>> seq_label(1 << 20)
'1M'
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from einsumcc.diagnostics import EinError

SEQ_LENS = (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20)
_FIELDS = ("d_model", "heads", "head_dim", "ffn", "batch")


@dataclass(frozen=True)
class Model:
    """One transformer encoder: attention uses ``heads`` heads of ``head_dim`` (E = F)."""

    name: str
    d_model: int
    heads: int
    head_dim: int
    ffn: int
    batch: int = 64

    def dims(self, seq: int) -> dict[str, int]:
        """Extents of the attention cascades for self-attention over ``seq`` tokens."""
        return {
            "B": self.batch,
            "H": self.heads,
            "E": self.head_dim,
            "F": self.head_dim,
            "M": seq,
            "P": seq,
        }


def _models_from_toml(text: str, origin: str) -> dict[str, Model]:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EinError.plain(f"{origin}: not valid TOML: {exc}") from None
    out: dict[str, Model] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise EinError.plain(f"{origin}: '{name}' must be a table of {', '.join(_FIELDS)}")
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise EinError.plain(f"{origin}: [{name}] has unknown key '{unknown[0]}'")
        missing = [k for k in _FIELDS[:4] if k not in entry]
        if missing:
            raise EinError.plain(f"{origin}: [{name}] lacks '{missing[0]}'")
        values = {k: entry[k] for k in _FIELDS if k in entry}
        for key, value in values.items():
            if not isinstance(value, int) or value <= 0:
                raise EinError.plain(
                    f"{origin}: [{name}] {key} = {value!r} is not a positive integer"
                )
        out[name] = Model(name, **values)
    return out


def builtin_models() -> dict[str, Model]:
    text = resources.files("einsumcc_fusemax").joinpath("models.toml").read_text("utf-8")
    return _models_from_toml(text, "models.toml")


def load_models(spec: str | None = None) -> list[Model]:
    """Models by name (``BERT,XLM``), from a TOML file, or all built-in ones (``None``)."""
    known = builtin_models()
    if spec is None:
        return list(known.values())
    out: list[Model] = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        if item.endswith(".toml"):
            path = Path(item)
            if not path.is_file():
                raise EinError.plain(f"--models: no such file {item}")
            out.extend(_models_from_toml(path.read_text(), item).values())
        elif item in known:
            out.append(known[item])
        else:
            raise EinError.plain(
                f"--models: unknown model '{item}'",
                hint="built-in: " + ", ".join(known) + "; or give a .toml file",
            )
    return out


def seq_label(seq: int) -> str:
    """The artifact's spelling: 1K ... 1M."""
    if seq % (1 << 20) == 0:
        return f"{seq >> 20}M"
    if seq % (1 << 10) == 0:
        return f"{seq >> 10}K"
    return str(seq)


def parse_seq(spec: str | None) -> tuple[int, ...]:
    if spec is None:
        return SEQ_LENS
    out: list[int] = []
    for item in (x.strip().upper() for x in spec.split(",") if x.strip()):
        scale = {"K": 1 << 10, "M": 1 << 20}.get(item[-1:], 1)
        digits = item[:-1] if scale > 1 else item
        if not digits.isdigit() or int(digits) <= 0:
            raise EinError.plain(f"--seq: '{item}' is not a length such as 4096, 4K or 1M")
        out.append(int(digits) * scale)
    return tuple(out)


@dataclass(frozen=True)
class FlatConfig:
    """FLAT's searched dataflow for one (model, length): an input of the FLAT baseline.

    ``placement`` says for each of Q, K, QK, A, V, AV whether FLAT keeps it on chip;
    ``granularity`` is ``head`` or ``row``; ``rows`` is the number of query rows per tile (P1).
    """

    placement: tuple[tuple[str, bool], ...]
    qk_stationarity: str
    av_stationarity: str
    granularity: str
    rows: int

    def onchip(self, tensor: str) -> bool:
        return dict(self.placement)[tensor]


def flat_config(model: str, seq: int) -> FlatConfig:
    text = resources.files("einsumcc_fusemax").joinpath("flat_configs.csv").read_text("utf-8")
    lines = [x for x in text.splitlines() if x and not x.startswith("#")]
    label = seq_label(seq)
    for row in csv.DictReader(lines):
        if row["model"] == model and row["seq_len"] == label:
            placement = tuple(
                (t, row[f"{t}_loc"] == "onchip") for t in ("Q", "K", "QK", "A", "V", "AV")
            )
            return FlatConfig(
                placement,
                row["QK_stationarity"],
                row["AV_stationarity"],
                row["fusion_granularity"],
                int(row["P1"]),
            )
    raise EinError.plain(
        f"FLAT has no searched dataflow for {model} at {label}",
        hint="FLAT's search results cover BERT, TrXL, T5 and XLM from 512 to 1M tokens",
    )
