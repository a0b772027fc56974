"""Every ViT-family name in timm's registry -> from_timm, counted per distinct stem configuration.

    PYTHONPATH=. .venv/bin/python benchmarks/timm_registry_sweep.py [--json benchmarks/results/timm_registry_sweep.json]

Each name is built with random weights (meta device, depth 1, no download: tests/support/timm_registry.py); a
name converts when from_timm accepts it and our fast z0 is within twice the error bound of the tensor
the model feeds its first block at its native size. Names with the same stem facts (tests/support/timm_registry.py
`stem_key`) are one configuration. Prints the counts and the refusal reasons, most frequent first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402,F401  (before anything imports tensorflow)

from support.timm_registry import check_native, vit_family_names  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the per-name results here")
    args = parser.parse_args()
    import timm

    start = time.perf_counter()
    rows = []
    for name in vit_family_names():
        began = time.perf_counter()
        key, refusal = check_native(name)
        print(f"{time.perf_counter() - began:6.2f} s {name}: {refusal or 'converts'}", file=sys.stderr, flush=True)
        rows.append({"name": name, "class": key[0], "refusal": refusal, "key": repr(key)})
    configs: dict[str, dict] = {}
    for row in rows:
        row["config"] = list(configs).index(row["key"]) if row["key"] in configs else len(configs)
        configs.setdefault(row.pop("key"), row)
    ok = [c for c in configs.values() if c["refusal"] is None]
    reasons = collections.Counter((c["class"], c["refusal"].split(": ", 1)[-1]) for c in configs.values()
                                  if c["refusal"] is not None)
    per_class = collections.Counter((c["class"], c["refusal"] is None) for c in configs.values())
    print(f"timm {timm.__version__}: {len(rows)} ViT-family names, {len(configs)} distinct stem configurations, "
          f"{len(ok)} convert ({time.perf_counter() - start:.0f} s)")
    for (cls, converts), n in sorted(per_class.items()):
        print(f"  {cls}: {n} {'convert' if converts else 'refused'}")
    for (cls, reason), n in reasons.most_common():
        print(f"  refused {n:3d} {cls}: {reason}")
    if args.json:
        Path(args.json).write_text(json.dumps({"timm": timm.__version__, "names": len(rows), "configs": len(configs),
                                               "convert": len(ok), "rows": rows}, indent=0) + "\n")


if __name__ == "__main__":
    main()
