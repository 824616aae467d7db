"""The state one kernel's lowering shares: where code is emitted, the kernel's parameters,
the values visible at this point (lane index tiles, scalars, validity masks, node values,
carried state), and the parts that do the work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from einsumcc.schedule.nodes import Node
from einsumcc.schedule.schedule import Kernel
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.expressions import Expressions
from einsumcc_triton.indexing import IndexCode
from einsumcc_triton.kernel import KernelBuilder
from einsumcc_triton.kernel_info import KernelParam, UnsupportedError
from einsumcc_triton.loops import LoopEmitter
from einsumcc_triton.masks import Masks
from einsumcc_triton.memory import Memory
from einsumcc_triton.node_values import NodeValues
from einsumcc_triton.values import Segment, TileValues, Val

if TYPE_CHECKING:
    from einsumcc_triton.lower import Lowering


class KernelScope:
    """One kernel being lowered: its emission stack, parameters and visible values, and the
    parts (tile plan and kernel assembly, values, indices, masks, memory, expressions, node
    values, loops) that read and extend them."""

    def __init__(self, low: Lowering, k: Kernel, fn_name: str) -> None:
        self.low = low
        self.c = low.c
        self.prog = low.prog
        self.k = k
        self.fn_name = fn_name
        self.names = low.namer.child()
        self.stack: list[list[ka.Stmt]] = [[]]
        self.params: dict[object, KernelParam] = {}
        self.order = [a.var for a in k.axes if a.lanes]
        self.lanes: dict[str, ka.Expr] = {}  # lane axis -> its 1-D index tile
        self.scalars: dict[str, ka.Expr] = {}  # scalar variable -> its value
        self.valid: dict[str, ka.Expr] = {}  # lane axis -> its validity mask (always needed)
        self.block: dict[str, ka.Expr] = {}  # lane axis -> BLOCK constexpr name
        self.program_syms: dict[str, ka.Expr] = {}  # lo.p, hi.p, idx.b
        self.grid_index: dict[str, ka.Expr] = {}  # grid variable -> this program's index
        self.env: dict[str, Val] = {}  # node values visible now
        self.state: dict[str, str] = {}  # carried recurrence state / accumulator variable names
        self.hoisted: dict[object, Val] = {}
        self.evaluated = set(k.nodes)
        for lp in k.loops:
            self.evaluated |= set(lp.nodes)
        self.loop_var: str | None = None
        self.stream_valid: ka.Expr | None = None  # the streamed lanes' mask in a partial body
        self.seg = Segment()
        self.builder = KernelBuilder(self)
        self.values = TileValues(self)
        self.index = IndexCode(self)
        self.masks = Masks(self)
        self.memory = Memory(self)
        self.exprs = Expressions(self)
        self.nodes = NodeValues(self)
        self.loops = LoopEmitter(self)

    # ------------------------------------------------------------ emission and parameters
    @property
    def out(self) -> list[ka.Stmt]:
        return self.stack[-1]

    def emit(self, s: ka.Stmt) -> None:
        self.out.append(s)

    def assign(self, hint: str, value: ka.Expr) -> ka.PyName:
        name = self.names.fresh(hint)
        self.emit(ka.Assign(ka.name(name), value))
        return ka.name(name)

    def param(self, key: object, hint: str, spec: KernelParam) -> ka.PyName:
        if key not in self.params:
            name = self.names.fresh(hint)
            self.params[key] = KernelParam(
                name, spec.kind, spec.tensor, spec.dim, spec.rank, spec.value, spec.dtype
            )
        return ka.name(self.params[key].name)

    def extent(self, rank: str) -> ka.Expr:
        """A rank's extent in kernel code: a constexpr, or an int argument."""
        n = self.low.known(rank)
        if n is not None:
            return self.param(
                ("extent", rank), rank, KernelParam("", "constexpr", rank=rank, value=n)
            )
        return self.param(("extent", rank), rank, KernelParam("", "extent", rank=rank))

    def blocksize(self, var: str) -> ka.Expr:
        a = self.k.axis(var)
        return self.param(
            ("block", var),
            f"BLOCK_{a.rank}",
            KernelParam("", "constexpr", rank=a.rank, value=a.block),
        )

    def tensor_ptr(self, name: str) -> ka.PyName:
        return self.param(
            ("ptr", name),
            f"{name}_ptr",
            KernelParam("", "ptr", tensor=name, dtype=self.low.tensor_dtype(name)),
        )

    def stride(self, name: str, dim: int) -> ka.PyName:
        rank, _ = self.low.tensor_dims(name)[dim]
        return self.param(
            ("stride", name, dim),
            f"stride_{name}_{rank.lower()}",
            KernelParam("", "stride", tensor=name, dim=dim, rank=rank),
        )

    def error(self, node: Node | None, message: str) -> UnsupportedError:
        return UnsupportedError(node, message)

    def local_keys(self) -> set[str]:
        return self.evaluated
