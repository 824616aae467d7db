"""GPU benchmark: einsumcc's generated one-pass attention kernel against torch's
scaled_dot_product_attention and a FlashAttention-2-style Triton kernel written by hand for
this benchmark (Triton tutorial 06's forward pass: one program per 128-query tile, K/V streamed
in 64-key tiles, online softmax in exp2), in TFLOP/s for several sequence lengths.

The cascade is FuseMax's Cascade 5 with batch and head ranks, in torch's [B, H, S, D] layout.
Every implementation is checked against SDPA before it is timed.  Without a CUDA device the
script says so and exits 0 (``--check`` then runs the three implementations at a small shape in
Triton's interpreter, comparing them, so the code paths stay tested).

    python benchmarks/triton_gpu.py [--seq 1024 2048 4096 8192 16384] [--batch 4] [--heads 16]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys

MHA_1PASS = """
cascade mha_1pass
rank B
rank H
rank E = {d}
rank F = {d}
rank M
rank P
rank M0 = 64
rank M1 = M / M0
split M -> M1, M0
param scale = 1 / sqrt(E)
input  Q[B, H, P, E] : f16
input  K[B, H, M, E] : f16
input  V[B, H, M, F] : f16
output AV[B, H, P, F] : f16

init RM[b, h, 0, p]     = -inf
init RD[b, h, 0, p]     = 0
init RNV[b, h, 0, p, f] = 0

BQK[b, h, m1, m0, p]    = scale * Q[b, h, p, e] * K[b, h, m1*M0 + m0, e]
LM[b, h, m1, p]         = max{{m0}} BQK[b, h, m1, m0, p]
RM[b, h, m1 + 1, p]     = max(RM[b, h, m1, p], LM[b, h, m1, p])
SLN[b, h, m1, m0, p]    = exp(BQK[b, h, m1, m0, p] - RM[b, h, m1 + 1, p])
SLD[b, h, m1, p]        = sum{{m0}} SLN[b, h, m1, m0, p]
SLNV[b, h, m1, p, f]    = SLN[b, h, m1, m0, p] * V[b, h, m1*M0 + m0, f]
PRM[b, h, m1, p]        = exp(RM[b, h, m1, p] - RM[b, h, m1 + 1, p])
RD[b, h, m1 + 1, p]     = SLD[b, h, m1, p] + RD[b, h, m1, p] * PRM[b, h, m1, p]
RNV[b, h, m1 + 1, p, f] = SLNV[b, h, m1, p, f] + RNV[b, h, m1, p, f] * PRM[b, h, m1, p]
AV[b, h, p, f]          = RNV[b, h, M1, p, f] / RD[b, h, M1, p]

expect passes(M) == 1
"""


def mha_source(d: int) -> str:
    return MHA_1PASS.format(d=d)


def flash_kernel():  # type: ignore[no-untyped-def]
    """The hand-written FlashAttention-2 forward kernel (defined lazily: it needs triton)."""
    import triton
    import triton.language as tl

    @triton.jit
    def fa2_fwd(
        q_ptr, k_ptr, v_ptr, o_ptr, sqb, sqh, sqs, skb, skh, sks, svb, svh, svs, sob, soh, sos,
        heads, n_ctx, m_ctx, qk_scale,
        d: tl.constexpr, block_m: tl.constexpr, block_n: tl.constexpr,
    ):  # fmt: skip
        start_m = tl.program_id(0)
        bh = tl.program_id(1)
        b = bh // heads
        h = bh % heads
        offs_m = start_m * block_m + tl.arange(0, block_m)
        offs_n = tl.arange(0, block_n)
        offs_d = tl.arange(0, d)
        q_ptrs = q_ptr + b.to(tl.int64) * sqb + h * sqh + offs_m[:, None] * sqs + offs_d[None, :]
        q = tl.load(q_ptrs, mask=offs_m[:, None] < n_ctx, other=0.0)
        m_i = tl.zeros([block_m], dtype=tl.float32) - float("inf")
        l_i = tl.zeros([block_m], dtype=tl.float32)
        acc = tl.zeros([block_m, d], dtype=tl.float32)
        k_base = k_ptr + b.to(tl.int64) * skb + h * skh
        v_base = v_ptr + b.to(tl.int64) * svb + h * svh
        for start_n in range(0, m_ctx, block_n):
            kt = tl.load(k_base + (start_n + offs_n)[None, :] * sks + offs_d[:, None])
            qk = tl.dot(q, kt)
            m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
            alpha = tl.math.exp2(m_i - m_ij)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(v_base + (start_n + offs_n)[:, None] * svs + offs_d[None, :])
            acc = acc * alpha[:, None] + tl.dot(p.to(tl.float16), v)
            m_i = m_ij
        acc = acc / l_i[:, None]
        o_ptrs = o_ptr + b.to(tl.int64) * sob + h * soh + offs_m[:, None] * sos + offs_d[None, :]
        tl.store(o_ptrs, acc.to(tl.float16), mask=offs_m[:, None] < n_ctx)

    return fa2_fwd


def fa2(q, k, v, kernel):  # type: ignore[no-untyped-def]
    import triton

    b, h, n, d = q.shape
    m = k.shape[2]
    assert m % 64 == 0
    o = torch.empty_like(q)
    grid = (triton.cdiv(n, 128), b * h)
    kernel[grid](
        q, k, v, o, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3],
        h, n, m, 1.4426950408889634 / math.sqrt(d), d=d, block_m=128, block_n=64,
        num_warps=8 if d <= 64 else 4, num_stages=3,
    )  # fmt: skip
    return o


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--check", action="store_true", help="without a GPU: compare the three "
                        "implementations at a small shape in Triton's interpreter")  # fmt: skip
    args = parser.parse_args()

    global torch
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark needs one, nothing was measured")
        if args.check:
            os.environ.setdefault("TRITON_INTERPRET", "1")
            check_on_cpu(args.head_dim)
        return 0
    import triton.testing

    import einsumcc

    ours = einsumcc.compile(mha_source(args.head_dim), target="triton")
    kernel = flash_kernel()
    sdpa = torch.nn.functional.scaled_dot_product_attention
    b, h, d = args.batch, args.heads, args.head_dim
    print(f"{torch.cuda.get_device_name()}: B={b}, H={h}, D={d}, f16, non-causal; TFLOP/s")
    print(f"  {'seq':>6} {'einsumcc':>9} {'FA2 triton':>11} {'torch SDPA':>11} {'ours/SDPA':>10}")
    for s in args.seq:
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
        ref = sdpa(q, k, v)
        runs = {
            "einsumcc": functools.partial(ours, q, k, v),
            "FA2": functools.partial(fa2, q, k, v, kernel),
            "SDPA": functools.partial(sdpa, q, k, v),
        }
        for name in ("einsumcc", "FA2"):
            err = (runs[name]().float() - ref.float()).abs().max().item()
            if err > 2e-2:
                print(f"  {name} disagrees with SDPA at seq {s}: max error {err:.3g}")
                return 1
        flops = 4 * b * h * s * s * d
        tf = [flops / (triton.testing.do_bench(fn) * 1e-3) / 1e12 for fn in runs.values()]
        print(f"  {s:>6} {tf[0]:9.1f} {tf[1]:11.1f} {tf[2]:11.1f} {tf[0] / tf[2]:10.2f}")
    return 0


def check_on_cpu(d: int) -> None:
    import einsumcc

    ours = einsumcc.compile(mha_source(d), target="triton")
    kernel = flash_kernel()
    q, k, v = (torch.randn(1, 2, 128, d, dtype=torch.float16) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    for name, out in (("einsumcc", ours(q, k, v)), ("FA2 triton", fa2(q, k, v, kernel))):
        err = (out.float() - ref).abs().max().item()
        print(f"  {name:<10} max error against SDPA at B=1, H=2, S=128: {err:.2e}")


if __name__ == "__main__":
    sys.exit(main())
