"""Do cold caches explain a stem graph's time above the floor? Times overhead_accounting's float and uint8
graphs (and the fp32 MatMul floor) once interleaved (harness.timing: every case once per round, the order rotating), and
once in warm blocks of back-to-back runs of one session (the first two of each block dropped); medians, and
ratios to the floor measured the same way. One thread count and batch per process:

    python benchmarks/warm_vs_interleaved.py --threads 2 --batch 1 [--rounds 40] [--blocks 8] [--block 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import overhead_accounting as accounting
from harness.timing import interleaved_times


def warm_blocks(sessions, feeds, blocks: int, block: int) -> list[float]:
    times = [[] for _ in sessions]
    for _ in range(blocks):
        for i, (sess, feed) in enumerate(zip(sessions, feeds)):
            for j in range(block):
                start = time.perf_counter()
                sess.run(None, feed)
                if j >= 2:  # the block's first runs find the other sessions' data in the caches
                    times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main(argv=None) -> int:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="vit_base_patch16_224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--block", type=int, default=10)
    args = parser.parse_args(argv)
    ort.set_global_thread_pool_sizes(args.threads, 1)
    cases = [c for c in accounting.build_cases(args.spec, args.batch)
             if c["name"] == "floor fp32" or (c["floor"] == "floor fp32")]
    sessions = [accounting.session(c["model"]) for c in cases]
    feeds = [c["feed"] for c in cases]
    runs = interleaved_times({i: (lambda s=s, f=f: s.run(None, f)) for i, (s, f) in enumerate(zip(sessions, feeds))},
                             args.rounds, warmup=5)
    a = [statistics.median(runs[i]) for i in range(len(cases))]
    b = warm_blocks(sessions, feeds, args.blocks, args.block)
    print(f"{accounting.cpu_model()}, {args.threads} thread(s), batch {args.batch}")
    for c, x, y in zip(cases, a, b):
        print(f"{c['name']:50s} interleaved {x * 1e3:8.3f} ms ({x / a[0]:.3f}x)   "
              f"warm blocks {y * 1e3:8.3f} ms ({y / b[0]:.3f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
