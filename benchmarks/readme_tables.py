"""Markdown tables for docs/benchmarks.md from the JSON in benchmarks/results/ (written by run_all.sh).

    python benchmarks/readme_tables.py [RESULTS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ("ort_floor_matmul", "ort_vitstem", "ort_vitstem_static", "ort_timm_dynamo",
         "torch_vitstem", "torch_timm", "tf_vitstem", "tf_handwritten")


def bench_table(result: dict) -> str:
    cases = sorted(result["cases"], key=lambda c: (-c["threads"], c["batch"]))
    head = "| engine | " + " | ".join(f"batch {c['batch']}, {c['threads']} thr" for c in cases) + " |"
    lines = [head, "|---" * (len(cases) + 1) + "|"]
    for name in ORDER:
        cells = []
        for c in cases:
            f = c["figures"].get(name)
            cells.append("n/a" if f is None else
                         f"{f['median_ms']:.2f} ms, x{f['ratio_to_floor']:.2f} (min x{f['min_ratio_to_floor']:.2f}, "
                         f"cpu x{f['cpu_ratio_to_floor']:.2f})")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines.append("| other processes' CPU load | " + " | ".join(f"{c['foreign_cpu_load']:.2f} CPUs" for c in cases) + " |")
    return "\n".join(lines)


def targets_table(result: dict) -> str:
    lines = ["| target | value | limit | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        extra = f" (min ratio {t['min_ratio']:.2f})" if "min_ratio" in t else ""
        lines.append(f"| {t['target']} | {t['value']:.2f}{extra} | {t['limit']} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines)


def variants_table(result: dict, names=None) -> str:
    cases = result["cases"]
    names = names or sorted(cases[0]["figures"], key=lambda n: cases[0]["figures"][n]["ratio_to_floor"])
    head = "| graph | " + " | ".join(f"batch {c['batch']}: median x (min x, cpu x)" for c in cases) + " |"
    lines = [head, "|---" * (len(cases) + 1) + "|"]
    for n in names:
        cells = []
        for c in cases:
            f = c["figures"].get(n)
            cells.append("n/a" if f is None else f"{f['ratio_to_floor']:.2f} ({f['min_ratio_to_floor']:.2f}, "
                                                 f"{f['cpu_ratio_to_floor']:.2f})")
        lines.append(f"| `{n}` | " + " | ".join(cells) + " |")
    lines.append("| floor median | " + " | ".join(f"{c['figures']['floor']['median_ms']:.2f} ms" for c in cases) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    root = Path((argv or sys.argv[1:] or ["benchmarks/results"])[0])
    bench = root / "bench_vit_base_patch16_224.json"
    if bench.exists():
        r = json.loads(bench.read_text())
        m = r["machine"]
        print(f"{r['spec']}, {r['date']}, {m['cpu']}, {m['logical_cpus']} CPUs, Python {m['python']}, "
              f"{', '.join(f'{k} {v}' for k, v in r['versions'].items())}\n")
        print(bench_table(r) + "\n\n" + targets_table(r) + "\n")
    for name in ("graph_variants_2threads.json", "graph_variants_1thread.json"):
        path = root / name
        if path.exists():
            print(f"{name}\n\n" + variants_table(json.loads(path.read_text())) + "\n")
    extras = root / "extras.json"
    if extras.exists():
        e = json.loads(extras.read_text())
        print("| fresh process (wall clock) | median | min |\n|---|---|---|")
        for k, v in e["fresh_process"].items():
            print(f"| {k} | {v['median_s']:.3f} s | {v['min_s']:.3f} s |")
        print("\n| target | value | limit | met |\n|---|---|---|---|")
        for t in e["targets"]:
            print(f"| {t['target']} | {t['value']:.3f} | {t['limit']} | {'yes' if t['met'] else 'no'} |")
        print("\n| precision | " + " | ".join(f"batch {c['batch']}" for c in e["precisions"]["cases"]) +
              " | max abs vs fp32 | rms err / rms z | min token cosine |\n|---" * 1 +
              "|---" * (len(e["precisions"]["cases"]) + 3) + "|")
        for p in ("fp32", "fp16", "int8"):
            cells = []
            for c in e["precisions"]["cases"]:
                f = c["figures"][f"ort_vitstem_{p}"]
                cells.append(f"{f['median_ms']:.2f} ms, x{f['ratio_to_floor']:.2f} (min x{f['min_ratio_to_floor']:.2f})")
            err = e["precisions"]["cases"][0]["errors"][p]
            print(f"| {p} | " + " | ".join(cells) + f" | {err['max_abs_vs_fp32']:.2e} | "
                  f"{err['rms_vs_fp32_over_rms_z']:.2e} | {err['min_token_cosine_vs_fp32']:.6f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
