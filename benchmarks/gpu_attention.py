"""GPU benchmark of the compiled masked-attention kernels against torch SDPA and FlexAttention.

For each variant (causal, sliding window, ALiBi, soft-cap, document mask, decode as declared,
decode of the one-pass cascade with the compiler's split-KV) the example's
cascade is specialised to a head dimension (64, 128) and a dtype (f16, bf16), compiled with
``--dims`` fixing the sequence lengths, checked against SDPA (or FlexAttention where SDPA cannot
express the score), then timed with ``triton.testing.do_bench``.  It prints TFLOP/s (the
useful FLOPs: 4 * D * (surviving query-key pairs)) and the ratio of einsumcc's kernels to each
reference.  Single head, [E, P] layouts as in the examples.

Without a CUDA device it says so and exits 0: it never prints figures it did not measure.
``--check`` then runs every variant at a small shape in Triton's interpreter against the
oracle-free reference (SDPA on the CPU), so the code paths stay tested.

    python benchmarks/gpu_attention.py [--seq 1024 4096 16384 32768] [--dim 64 128]
        [--dtype f16 bf16] [--variant causal window alibi softcap document decode decode-1pass]
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from einsumcc.diagnostics import EinError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WINDOW = 256
SLOPE = 0.0625
CAP = 30.0


class MismatchError(Exception):
    pass


@dataclass(frozen=True)
class Variant:
    name: str
    example: str
    decode: bool = False


VARIANTS = {
    "causal": Variant("causal", "attention_causal.ein"),
    "window": Variant("window", "attention_sliding_window.ein"),
    "alibi": Variant("alibi", "attention_alibi_causal.ein"),
    "softcap": Variant("softcap", "attention_softcap.ein"),
    "document": Variant("document", "document_mask.ein"),
    "decode": Variant("decode", "attention_decode.ein", decode=True),
    # the one-pass cascade at P = 1: split-KV chosen by the compiler (runs and merge derived)
    "decode-1pass": Variant("decode-1pass", "attention_1pass.ein", decode=True),
}


def cascade_text(v: Variant, dim: int, dtype: str) -> str:
    text = (EXAMPLES / v.example).read_text()
    text = re.sub(r"rank E = \d+", f"rank E = {dim}", text)
    text = re.sub(r"rank F = \d+", f"rank F = {dim}", text)
    text = re.sub(r"rank W = \d+", f"rank W = {WINDOW}", text)
    return text.replace(": f16", f": {dtype}")


def keep_mask(v: Variant, m: int, p: int, seg_q: Any, seg_k: Any) -> Any:
    """[P, M] booleans: the (query, key) pairs the variant keeps (None: all)."""
    import torch

    if v.decode:
        return None
    q = torch.arange(p)[:, None]
    k = torch.arange(m)[None, :]
    keep = k <= q
    if v.name == "window":
        keep &= q - k < WINDOW
    if v.name == "document":
        keep &= seg_q.cpu()[:, None] == seg_k.cpu()[None, :]
    return keep


def reference(v: Variant, q: Any, k: Any, val: Any, keep: Any) -> dict[str, Callable[[], Any]]:
    """Reference implementations, [P, E] x [M, E] x [M, F] -> [P, F], by name."""
    import torch
    import torch.nn.functional as fn

    scale = 1 / math.sqrt(q.shape[-1])
    qq, kk, vv = q[None, None], k[None, None], val[None, None]
    out: dict[str, Callable[[], Any]] = {}
    if v.name == "causal":
        out["sdpa"] = lambda: fn.scaled_dot_product_attention(qq, kk, vv, is_causal=True)[0, 0]
    elif v.name in ("window", "document"):
        mask = keep.to(q.device)
        out["sdpa"] = lambda: fn.scaled_dot_product_attention(qq, kk, vv, attn_mask=mask)[0, 0]
    elif v.name == "alibi":
        p, m = q.shape[0], k.shape[0]
        dist = torch.arange(p, device=q.device)[:, None] - torch.arange(m, device=q.device)
        bias = (-SLOPE * dist).to(q.dtype).masked_fill(~keep.to(q.device), float("-inf"))
        out["sdpa"] = lambda: fn.scaled_dot_product_attention(qq, kk, vv, attn_mask=bias)[0, 0]
    elif v.decode:
        out["sdpa"] = lambda: fn.scaled_dot_product_attention(qq, kk, vv)[0, 0]
    if q.is_cuda:
        out.update(_flex(v, qq, kk, vv, scale))
    else:
        out["eager"] = lambda: _eager(v, q, k, val, keep, scale)
    return out


def _eager(v: Variant, q: Any, k: Any, val: Any, keep: Any, scale: float) -> Any:
    """The variant written out in float32 torch operations (the check on the CPU)."""
    import torch

    s = (q.float() @ k.float().T) * scale
    if v.name == "softcap":
        s = CAP * torch.tanh(s / CAP)
    if v.name == "alibi":
        dist = torch.arange(q.shape[0])[:, None] - torch.arange(k.shape[0])[None, :]
        s = s - SLOPE * dist
    if keep is not None:
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1) @ val.float()


def _flex(v: Variant, qq: Any, kk: Any, vv: Any, scale: float) -> dict[str, Callable[[], Any]]:
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    p, m = qq.shape[2], kk.shape[2]

    def causal(b: Any, h: Any, qi: Any, ki: Any) -> Any:
        return ki <= qi

    def window(b: Any, h: Any, qi: Any, ki: Any) -> Any:
        return (ki <= qi) & (qi - ki < WINDOW)

    def alibi(score: Any, b: Any, h: Any, qi: Any, ki: Any) -> Any:
        return score - SLOPE * (qi - ki)

    def softcap(score: Any, b: Any, h: Any, qi: Any, ki: Any) -> Any:
        return CAP * torch.tanh(score / CAP)

    mask_mod = {"window": window, "decode": None}.get(v.name, causal)
    if v.name == "document":
        return {}  # segment ids live in the document example's inputs: SDPA covers it
    score_mod = {"alibi": alibi, "softcap": softcap}.get(v.name)
    block = (
        create_block_mask(mask_mod, 1, 1, p, m, device=qq.device) if mask_mod is not None else None
    )
    flex = torch.compile(flex_attention)
    return {
        "flex": lambda: flex(qq, kk, vv, score_mod=score_mod, block_mask=block, scale=scale)[0, 0]
    }


def inputs(v: Variant, c: Any, m: int, p: int, dtype: Any, device: str) -> dict[str, Any]:
    import torch

    g = torch.Generator(device="cpu").manual_seed(0)
    out: dict[str, Any] = {}
    for t in c.inputs:
        shape = [m if r == "M" else p if r == "P" else int(c.rank(r).extent) for r in t.ranks]
        if t.dtype.value == "i32":
            seg = torch.arange(shape[0]) // 1000  # documents of 1000 tokens
            out[t.name] = seg.to(torch.int32).to(device)
        else:
            out[t.name] = torch.randn(*shape, generator=g).to(dtype).to(device)
    return out


def run_variant(v: Variant, seq: int, dim: int, dtype_name: str, device: str) -> dict[str, float]:
    """TFLOP/s by implementation (measured on the GPU; 0-length dict on mismatch)."""
    import torch

    import einsumcc

    dtype = {"f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    p = 1 if v.decode else seq
    m = seq if not v.decode else max(16 * 64, seq // 1024 * 1024)
    text = cascade_text(v, dim, dtype_name)
    c = einsumcc.load(text)
    kernel = einsumcc.compile(c, target="triton", M=m, P=p)
    x = inputs(v, c, m, p, dtype, device)
    args = [x[t.name] for t in c.inputs]
    q, k, val = x["Q"].T, x["K"].T, x["V"].T  # [P, E], [M, E], [M, F]
    keep = keep_mask(v, m, p, x.get("SEGQ"), x.get("SEGK"))
    refs = reference(v, q.contiguous(), k.contiguous(), val.contiguous(), keep)
    ours = kernel(*args).T  # AV[F, P] -> [P, F]
    for name, fn in refs.items():
        err = (ours.float() - fn().float()).abs().max().item()
        if not err <= 2e-2 * max(1.0, fn().float().abs().max().item()):
            raise MismatchError(f"{v.name}: einsumcc differs from {name} by {err:.3g}")
    pairs = p * m if keep is None else int(keep.sum().item())
    flops = 4 * dim * pairs
    runs = {"einsumcc": lambda: kernel(*args), **refs}
    if device != "cuda":
        return {}
    import triton  # after the kernels were compiled (the interpreter is decided at import)

    return {name: flops / (triton.testing.do_bench(fn) * 1e-3) / 1e12 for name, fn in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seq", type=int, nargs="+", default=[1024, 4096, 16384, 32768])
    parser.add_argument("--dim", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--dtype", nargs="+", default=["f16", "bf16"], choices=["f16", "bf16"])
    parser.add_argument("--variant", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--check", action="store_true", help="without a GPU: run each variant small, on the CPU"
    )
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing timed (no figures are printed without a measurement)")
        if args.check:
            for name in args.variant:
                try:
                    run_variant(VARIANTS[name], 256 if name != "decode" else 2048, 64, "f16", "cpu")
                except EinError as exc:
                    print(f"  {name}: not compiled: {str(exc).splitlines()[0]}")
                    continue
                print(f"  {name}: compiled, run in the interpreter, equal to the reference")
        return 0
    print(f"{torch.cuda.get_device_name()}: single head, TFLOP/s (useful FLOPs), ratio = ours/ref")
    for dtype in args.dtype:
        for dim in args.dim:
            for seq in args.seq:
                for name in args.variant:
                    try:
                        tf = run_variant(VARIANTS[name], seq, dim, dtype, "cuda")
                    except EinError as exc:
                        print(f"  {name}: not compiled: {str(exc).splitlines()[0]}")
                        continue
                    except MismatchError as exc:
                        print(f"  {exc}: not timed")
                        continue
                    ours = tf.pop("einsumcc")
                    refs = "  ".join(
                        f"{r} {t:7.1f} (x{ours / t:.2f})" for r, t in sorted(tf.items())
                    )
                    print(f"  {dtype:>4} D={dim:<3} N={seq:<6} {name:<9} ours {ours:7.1f}  {refs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
