"""A kernel as a whole: its tile plan (which tile of which rank each program owns, the
lanes of whole ranks), then its program-level nodes and loops, and its parameters."""

from __future__ import annotations

from einsumcc.schedule.schedule import AxisRole
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.kernel_info import KernelInfo, KernelParam
from einsumcc_triton.part import Part
from einsumcc_triton.values import Segment


class TilePlan(Part):
    """The tiles a program owns: its index along each grid rank (lane offsets and validity
    masks for tiled ranks, the bounds loops may use) and the lanes of whole ranks."""

    def setup_grid(self) -> None:
        self.scope.grid_index = {}
        if not self.k.grid:
            return
        rest: ka.Expr = self.scope.assign("pid", ka.call("tl.program_id", ka.Literal(0)))
        for i, v in enumerate(self.k.grid):
            a = self.k.axis(v)
            last = i == len(self.k.grid) - 1
            ext = self.scope.extent(a.rank)
            if a.lanes:
                count: ka.Expr = ka.call("tl.cdiv", ext, self.scope.blocksize(v))
            else:
                count = ext
            if last:
                idx = self.scope.assign(f"{v}_tile" if a.lanes else v, rest)
            else:
                idx = self.scope.assign(
                    f"{v}_tile" if a.lanes else v, ka.BinaryOp("%", rest, count)
                )
                rest = self.scope.assign("rest", ka.BinaryOp("//", rest, count))
            self.scope.grid_index[v] = idx
            if a.lanes:
                start = self.scope.assign(
                    f"{v}_start", ka.BinaryOp("*", idx, self.scope.blocksize(v))
                )
                self.scope.lanes[v] = self.scope.assign(
                    f"offs_{v}",
                    ka.BinaryOp(
                        "+", start, ka.call("tl.arange", ka.Literal(0), self.scope.blocksize(v))
                    ),
                )
                self.scope.program_syms[f"lo.{v}"] = start
                self.scope.program_syms[f"hi.{v}"] = ka.BinaryOp(
                    "-",
                    ka.call("tl.minimum", ka.BinaryOp("+", start, self.scope.blocksize(v)), ext),
                    ka.Literal(1),
                )
                n = a.extent
                if n is None or n % a.block:
                    self.scope.valid[v] = self.scope.assign(
                        f"{v}_ok", ka.BinaryOp("<", self.scope.lanes[v], ext)
                    )
            else:
                self.scope.scalars[v] = idx
                self.scope.program_syms[f"idx.{v}"] = idx

    def setup_whole(self) -> None:
        for a in self.k.axes:
            if a.role is not AxisRole.WHOLE:
                continue
            if not a.lanes:
                self.scope.scalars[a.var] = ka.Literal(0)
                continue
            self.scope.lanes[a.var] = self.scope.assign(
                f"offs_{a.var}", ka.call("tl.arange", ka.Literal(0), self.scope.blocksize(a.var))
            )
            if a.extent is not None and a.extent < a.block:
                self.scope.valid[a.var] = self.scope.assign(
                    f"{a.var}_ok",
                    ka.BinaryOp("<", self.scope.lanes[a.var], self.scope.extent(a.rank)),
                )


class KernelBuilder(Part):
    """Builds one kernel: sets up its tile plan, emits the nodes before the loops
    and each loop, and assembles the ``@triton.jit`` function and its :class:`KernelInfo`."""

    def build(self) -> tuple[ka.FunctionDef, KernelInfo]:
        plan = TilePlan(self.scope)
        plan.setup_grid()
        plan.setup_whole()
        self.scope.seg = Segment(None, True)
        for key in self.k.before:
            self.nodes.program_node(key)
        for lp in self.k.loops:
            self.loops.emit_loop(lp)
        params = self.ordered_params()
        fn = ka.FunctionDef(
            self.scope.fn_name,
            tuple(
                ka.Arg(
                    p.name,
                    ka.attr("tl", "constexpr") if p.kind in ("constexpr", "interp") else None,
                )
                for p in params
            ),
            tuple(self.scope.stack[0]),
            (ka.attr("triton", "jit"),),
            comment=self.describe(),
        )
        grid = tuple((self.k.axis(v).rank, self.k.axis(v).block) for v in self.k.grid)
        from einsumcc_triton.tuning import launch_choices

        configs = launch_choices(self.scope.low.s, self.k)
        info = KernelInfo(self.scope.fn_name, self.k.name, params, grid, self.k.num_warps, configs)
        return fn, info

    def ordered_params(self) -> tuple[KernelParam, ...]:
        rank = {
            "ptr": 0,
            "tiles": 0,
            "stride": 1,
            "extent": 2,
            "param": 3,
            "constexpr": 4,
            "interp": 5,
        }
        items = list(self.scope.params.values())
        return tuple(sorted(items, key=lambda p: rank[p.kind]))

    def describe(self) -> str:
        lines = [
            f"kernel {self.k.name}: one program per "
            + (
                " x ".join(
                    f"{self.k.axis(v).block}-tile of {self.k.axis(v).rank}"
                    if self.k.axis(v).lanes
                    else f"index of {self.k.axis(v).rank}"
                    for v in self.k.grid
                )
                or "launch (a single program)"
            )
        ]
        for lp in self.k.loops:
            lines.append(
                f"loop {lp.number} over {lp.var}: "
                + ", ".join(lp.nodes)
                + (f" (recomputed: {', '.join(lp.recomputed)})" if lp.recomputed else "")
            )
        return "\n".join(lines)
