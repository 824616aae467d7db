"""The base of the parts that lower one kernel: each has one job and reaches the others, and
the state they share, through the kernel's :class:`~einsumcc_triton.scope.KernelScope`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from einsumcc_triton.expressions import Expressions
    from einsumcc_triton.indexing import IndexCode
    from einsumcc_triton.loops import LoopEmitter
    from einsumcc_triton.masks import Masks
    from einsumcc_triton.memory import Memory
    from einsumcc_triton.node_values import NodeValues
    from einsumcc_triton.scope import KernelScope
    from einsumcc_triton.values import TileValues


class Part:
    def __init__(self, scope: KernelScope) -> None:
        self.scope = scope
        self.low = scope.low
        self.c = scope.c
        self.prog = scope.prog
        self.k = scope.k

    @property
    def values(self) -> TileValues:
        return self.scope.values

    @property
    def index(self) -> IndexCode:
        return self.scope.index

    @property
    def masks(self) -> Masks:
        return self.scope.masks

    @property
    def memory(self) -> Memory:
        return self.scope.memory

    @property
    def exprs(self) -> Expressions:
        return self.scope.exprs

    @property
    def nodes(self) -> NodeValues:
        return self.scope.nodes

    @property
    def loops(self) -> LoopEmitter:
        return self.scope.loops
