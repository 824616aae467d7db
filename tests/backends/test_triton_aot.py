"""Every generated kernel compiles ahead of time for sm_80 and sm_90 (no GPU needed): Triton's
whole pipeline down to a cubin, then ptxas -v for registers and spills.  The one-pass
attention kernel uses Hopper's wgmma and spills nothing at the default tiles."""

from __future__ import annotations

from typing import Any

import pytest

from einsumcc_triton.aot import KernelStats, aot_compile_many
from tests.backends._triton import compiled, unsupported
from tests.conftest import EXAMPLES

ARCHS = (80, 90)
FILES = sorted(EXAMPLES.rglob("*.ein"))


@pytest.fixture(scope="module")
def stats() -> dict[tuple[str, int], list[KernelStats]]:
    jobs: list[tuple[Any, int]] = []
    keys = []
    for path in FILES:
        if unsupported(str(path)):
            continue
        k = compiled(str(path))
        for arch in ARCHS:
            jobs.append((k, arch))
            keys.append((path.relative_to(EXAMPLES).as_posix(), arch))
    results = aot_compile_many(jobs)
    return dict(zip(keys, results, strict=True))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_every_kernel_compiles(
    stats: dict[tuple[str, int], list[KernelStats]], path: Any, arch: int
) -> None:
    why = unsupported(str(path))
    if why:
        pytest.xfail(why)
    name = path.relative_to(EXAMPLES).as_posix()
    result = stats[(name, arch)]
    assert len(result) == len(compiled(str(path)).kernels)
    for s in result:
        assert s.ptx.startswith("//") or ".version" in s.ptx
        assert s.registers > 0


def test_one_pass_attention_uses_wgmma_without_spills(
    stats: dict[tuple[str, int], list[KernelStats]],
) -> None:
    (s90,) = stats[("attention_1pass.ein", 90)]
    assert s90.wgmma > 0
    assert s90.spill_stores == 0
    assert s90.spill_loads == 0
    (s80,) = stats[("attention_1pass.ein", 80)]
    assert s80.mma > 0  # Ampere tensor cores
    assert s80.spill_stores == 0


def test_every_example_meets_the_target_rules(
    stats: dict[tuple[str, int], list[KernelStats]],
) -> None:
    """At the cost model's launch choices: no kernel spills on either target, and on sm_90
    every kernel whose products have 64 rows or more uses wgmma (FuseMax's 256-key chunks
    included: they are refined to 64 keys)."""
    checked = 0
    for (name, arch), result in stats.items():
        k = compiled(str(EXAMPLES / name))
        for st, info, sk in zip(result, k.kernels, k.schedule.kernels, strict=True):
            assert st.spills == 0, (name, arch, st.kernel)
            assert (st.num_warps, st.num_stages) == info.config(arch)
            rows = min(
                (a.block for a in sk.axes if a.role.value == "grid" and a.block > 1), default=1
            )
            if arch == 90 and "tl.dot(" in k.source and rows >= 64:
                assert st.wgmma > 0, (name, st.kernel)
                checked += 1
    assert checked >= 10
