"""Cost models: the cycle-level (``faithful``) model and the FuseMax artifact's (``artifact``).

The engine always schedules ops cycle by cycle from the cascade, the mapping and the
architecture.  A *model* decides which physical effects the op templates charge:

============================  ===========================  ==================================
effect                        ``faithful``                  ``artifact`` (Timeloop + TeAAL)
============================  ===========================  ==================================
systolic skew and operand     one PE hop per cycle          none: operands reach every PE at
propagation (fill)                                          once (Timeloop has no skew)
spatial reductions            one row (lane) per cycle      a single-step reduction (``LM``'s
                                                            max) leaves the array after the
                                                            array's drain, R cycles (the
                                                            artifact's ``stall = LM x PE_dim``);
                                                            streamed ones (``SLNV``) are free
output-stationary drains      one value per cycle per       free
                              bottom port
stationary-operand loads      ``u_r`` cycles                free
2D <-> 1D link                ``link.latency`` cycles       free
global-buffer ports           a step waits for its words    unlimited
DRAM bandwidth                the architecture file's       ``400 * 2**30`` B/s (the artifact's
                              (the paper's 400 GB/s)        ``mem_bw``)
============================  ===========================  ==================================

A mapping file may add a ``[model.<name>]`` table of ``--set`` overrides that hold only under
that model, e.g. the +Cascade mapping charges the FLAT 1D PE's subtract and exponential one
after another under ``artifact`` (as ``flat_pe_proposal.py`` does) while FLAT's own softmax
is pipelined at one element per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from einsumcc.diagnostics import EinError

ARTIFACT_DRAM_BANDWIDTH = 400 * 2**30


@dataclass(frozen=True)
class ModelOptions:
    name: str
    skew: bool = True  # wavefront skew and one hop per cycle for operands and partial sums
    reduce: str = "hops"  # hops | drain-single-step
    drains: bool = True  # output-stationary results drain through the bottom ports
    loads: bool = True  # stationary operands take u_r cycles to shift in
    link: bool = True  # the 2D <-> 1D link has its latency
    ports: bool = True  # global-buffer ports throttle a step
    dram_bandwidth: int | None = None  # bytes/s, None: the architecture's
    # which ``[model.<name>]`` table of a mapping applies ("": the one named ``name``)
    table: str = ""

    @property
    def hop(self) -> int:
        return 1 if self.skew else 0

    @property
    def overrides_key(self) -> str:
        return self.table or self.name


FAITHFUL = ModelOptions("faithful")
ARTIFACT = ModelOptions(
    "artifact",
    skew=False,
    reduce="drain-single-step",
    drains=False,
    loads=False,
    link=False,
    ports=False,
    dram_bandwidth=ARTIFACT_DRAM_BANDWIDTH,
)
MODELS = {"faithful": FAITHFUL, "artifact": ARTIFACT}


def model_options(name: str | ModelOptions) -> ModelOptions:
    if isinstance(name, ModelOptions):
        return name
    try:
        return MODELS[name]
    except KeyError:
        raise EinError.plain(
            f"--model {name}: unknown cost model", hint="models: " + ", ".join(MODELS)
        ) from None


# the effects the two models disagree on: (ModelOptions field, what the faithful model charges)
EFFECTS = (
    ("skew", "systolic skew and fill, one PE hop per cycle"),
    ("reduce", "spatial reductions one row per cycle"),
    ("drains", "output drains through the bottom ports"),
    ("loads", "stationary operands shifted in"),
    ("link", "the 2D-1D link's latency"),
    ("ports", "global-buffer port bandwidth"),
    ("dram_bandwidth", "DRAM at the architecture's bandwidth"),
)


def ablations() -> list[tuple[str, ModelOptions]]:
    """The artifact's model with one effect of the faithful model switched on at a time, and
    with the mapping's artifact-only architecture settings dropped: (what, options)."""
    out = []
    for field, label in EFFECTS:
        switched = {field: getattr(FAITHFUL, field)}
        out.append(
            (label, replace(ARTIFACT, name=f"artifact+{field}", table="artifact", **switched))
        )
    faithful_settings = replace(ARTIFACT, name="artifact+mapping", table="faithful")
    out.append(("the mapping's settings for the faithful model", faithful_settings))
    return out


def describe(model: ModelOptions) -> list[tuple[str, str]]:
    """The model's assumptions as (effect, what is charged) rows, for reports."""
    return [
        ("skew and fill", "one PE hop per cycle" if model.skew else "none (Timeloop)"),
        (
            "spatial reductions",
            "one row per cycle"
            if model.reduce == "hops"
            else "single-step: the array's drain (R cycles); streamed: free",
        ),
        ("output drains", "one value per cycle per bottom port" if model.drains else "free"),
        ("stationary loads", "u_r cycles" if model.loads else "free"),
        ("2D-1D link", "link.latency" if model.link else "free"),
        ("buffer ports", "throttle a step" if model.ports else "unlimited"),
        (
            "DRAM bandwidth",
            "architecture file"
            if model.dram_bandwidth is None
            else f"{model.dram_bandwidth:,} B/s",
        ),
    ]
