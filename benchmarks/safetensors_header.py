"""Time checking a safetensors header naming many tensors (SafetensorsFile: read, JSON, every check).

python benchmarks/safetensors_header.py [--tensors 200000] [--runs 5]
Writes a file of N one-element F32 tensors to a temporary directory and prints the best wall and CPU
time of `runs` opens (the checks are CPU-bound: on a shared machine the CPU time is the figure to trust).
"""

import argparse
import json
import struct
import tempfile
import time
from pathlib import Path

from vitstem.spec.safetensors_file import SafetensorsFile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n = args.tensors
    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(n)}
    text = json.dumps(header).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "many.safetensors"
        path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(4 * n))
        wall, cpu = [], []
        for _ in range(args.runs):
            w, c = time.perf_counter(), time.process_time()
            SafetensorsFile(path).close()
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
    print(f"{n} tensors, header {len(text) / 1e6:.1f} MB: best wall {min(wall):.2f} s, best CPU {min(cpu):.2f} s "
          f"(of {args.runs})")


if __name__ == "__main__":
    main()
