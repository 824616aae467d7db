"""Key tiles that a document mask visits on a packed batch, counted while the kernel runs.

    python benchmarks/packed_documents.py [--tokens 8192] [--docs 16] [--seed 0] [--json]
                                          [--check]

``examples/document_mask.ein`` is compiled with ``count_tiles=True`` and run in Triton's
interpreter (``TRITON_INTERPRET=1``, no GPU needed) on ``--docs`` documents of random lengths
packed into ``--tokens`` tokens (seeded, sorted segment ids, the same ids for queries and
keys).  Reported, never asserted:

* visited: the (query tile, key tile) pairs the kernel executed, out of all of them;
* ideal: the block-sparse count, the pairs with at least one surviving point
  (``m <= p and SEGK[m] == SEGQ[p]``);
* the documents' own causal cost: the sum over documents of the tiles a causal kernel with
  the same tiles visits on that document alone (what running them one by one costs), and the
  causal cost of the whole packed sequence as one document.

``--check`` also compares the output with a float32 numpy masked softmax (in row chunks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from einsumcc.schedule.schedule import AxisRole  # noqa: E402
from einsumcc_triton import compile  # noqa: E402

DOC = ROOT / "examples" / "document_mask.ein"


def packed_ids(n: int, docs: int, seed: int) -> np.ndarray:
    """Sorted segment ids of ``docs`` documents of random lengths (at least 1) in ``n``."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, n), size=docs - 1, replace=False))
    return np.searchsorted(cuts, np.arange(n), side="right").astype(np.int32)


def pairs(keep_tile: Any, m: int, p: int, bm: int, bp: int) -> int:
    """(key tile, query tile) pairs where ``keep_tile(m0, m1, p0, p1)`` says a point survives."""
    return sum(
        bool(keep_tile(i * bm, min((i + 1) * bm, m), j * bp, min((j + 1) * bp, p)))
        for i in range(math.ceil(m / bm))
        for j in range(math.ceil(p / bp))
    )


def block_sparse(ids: np.ndarray, bm: int, bp: int) -> int:
    """Pairs with a point of ``m <= p and ids[m] == ids[p]`` (ids sorted: a tile's ids are a
    contiguous range, so a pair has a point iff the ranges meet and some m <= p shares one)."""
    n = len(ids)

    def keep(m0: int, m1: int, p0: int, p1: int) -> bool:
        if m0 > p1 - 1:
            return False
        km = ids[m0:m1][:, None]
        qp = ids[p0:p1][None, :]
        mm = np.arange(m0, m1)[:, None]
        pp = np.arange(p0, p1)[None, :]
        return bool(((mm <= pp) & (km == qp)).any())

    return pairs(keep, n, n, bm, bp)


def causal(n: int, bm: int, bp: int) -> int:
    return pairs(lambda m0, m1, p0, p1: m0 <= p1 - 1, n, n, bm, bp)


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """AV[f, p] in float32, in chunks of 512 queries (every query keeps its own key)."""
    e, n = q.shape
    out = np.empty((v.shape[0], n), np.float32)
    kf, vf = k.astype(np.float32), v.astype(np.float32)
    for s in range(0, n, 512):
        p = np.arange(s, min(s + 512, n))
        sc = (q[:, p].astype(np.float32).T @ kf) / math.sqrt(e)
        ok = (np.arange(n)[None, :] <= p[:, None]) & (ids[None, :] == ids[p][:, None])
        sc = np.where(ok, sc, -np.inf)
        w = np.exp(sc - sc.max(axis=1, keepdims=True))
        out[:, p] = (w @ vf.T / w.sum(axis=1, keepdims=True)).T
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    n = args.tokens
    dims = {"M": n, "P": n}
    k = compile(DOC, dims, count_tiles=True)
    kernel = k.schedule.kernels[0]
    bp = int(kernel.axis("p").block)
    bm = next(
        (int(a.block) for a in kernel.axes if a.role is AxisRole.STREAM),
        int(kernel.axis("m0").block),
    )
    ids = packed_ids(n, args.docs, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    q, kk, v = (rng.standard_normal((64, n)).astype(np.float16) for _ in range(3))
    t0 = time.perf_counter()
    out = k.run_numpy({"Q": q, "K": kk, "V": v, "SEGQ": ids, "SEGK": ids})
    seconds = time.perf_counter() - t0
    visited = int(sum(k.fn.tile_counts.tolist()))
    total = math.ceil(n / bm) * math.ceil(n / bp)
    ideal = block_sparse(ids, bm, bp)
    lengths = np.bincount(ids, minlength=args.docs).tolist()
    own = sum(causal(int(length), bm, bp) for length in lengths)
    result: dict[str, Any] = {
        "tokens": n,
        "documents": args.docs,
        "seed": args.seed,
        "lengths": lengths,
        "tiles": {"query": bp, "key": bm},
        "visited": visited,
        "total": total,
        "visited_fraction": visited / total,
        "ideal": ideal,
        "ideal_fraction": ideal / total,
        "documents_own_causal": own,
        "packed_causal": causal(n, bm, bp),
        "interpreter_seconds": round(seconds, 1),
    }
    if args.check:
        got = next(iter(out.values())).astype(np.float32)
        want = reference(q, kk, v, ids)
        result["max_rel_err"] = float(np.abs(got - want).max() / np.abs(want).max())
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        r = result
        sys.stdout.write(
            f"document_mask: {r['documents']} documents in {r['tokens']} tokens (seed "
            f"{r['seed']}), tiles {bp} queries x {bm} keys\n"
            f"  lengths: {r['lengths']}\n"
            f"  visited {r['visited']} of {r['total']} (query tile, key tile) pairs "
            f"({100 * r['visited_fraction']:.2f}%)\n"
            f"  ideal block-sparse: {r['ideal']} ({100 * r['ideal_fraction']:.2f}%)\n"
            f"  sum of the documents' own causal tiles: {r['documents_own_causal']}; "
            f"the packed sequence as one causal document: {r['packed_causal']}\n"
            f"  interpreter: {r['interpreter_seconds']} s"
            + (f"; max relative error vs numpy: {r['max_rel_err']:.2e}" if args.check else "")
            + "\n"
        )
    return result


if __name__ == "__main__":
    main()
