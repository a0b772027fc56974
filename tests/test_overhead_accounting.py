"""benchmarks/overhead_accounting.py on a tiny spec, one round: the markdown has every case's tables, the
ratios are the JSON's medians, bytes are the hand-derived tensor sizes, and per-node rows add up."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import overhead_accounting as oa  # noqa: E402

SPEC = {"spec_version": 1, "name": "accounting_tiny", "image_size": [16, 16], "in_channels": 3, "patch_size": [4, 4],
        "embed_dim": 16, "prefix": {"class_token": True},
        "position_embedding": {"kind": "learned"},
        "input": {"layout": "NCHW", "preprocess": {"scale": 1 / 255, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25]}}}
BATCH, N, K, D, T = 2, 16, 48, 16, 17


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accounting")
    (tmp / "spec.json").write_text(json.dumps(SPEC))
    md, js = tmp / "performance.md", tmp / "raw.json"
    assert oa.main(["--spec", str(tmp / "spec.json"), "--batch", str(BATCH), "--threads", "1", "--rounds", "1",
                    "--profile-runs", "10", "--out", str(md), "--json", str(js)]) == 0
    return md.read_text(), json.loads(js.read_text())


def table_rows(text: str, heading: str) -> list[list[str]]:
    block = text.split(heading + "\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in block.splitlines()[2:]]


def test_header_names_the_host_cpu(report):
    md, _ = report
    with open("/proc/cpuinfo") as f:
        model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    assert f"Host: **{model}**" in md


def test_summary_ratios_are_the_medians(report):
    md, raw = report
    cases = {c["name"]: c for c in raw["parts"][0]["cases"]}
    rows = table_rows(md, "## Summary")
    assert [r[0] for r in rows] == ["vitstem fp32, dynamic batch", "vitstem fp32, static batch", "vitstem fp16",
                                    "vitstem int8", "vitstem uint8 NHWC, preprocessing in graph",
                                    "vitstem fp32, NHWC float input",
                                    "vitstem fp32, NCHW input, Conv", "vitstem fp32, NCHW input, Transpose patchify"]
    for row in rows:
        case = cases[row[0]]
        floor = cases[case["floor"]]
        assert row[5] == f"{case['median_us'] / floor['median_us']:.2f}"
    # unavoidable traffic: the image read once + z0 written once (float32 NCHW, or uint8 NHWC frames)
    assert cases["vitstem fp32, dynamic batch"]["traffic_bytes"] == BATCH * 3 * 16 * 16 * 4 + BATCH * T * D * 4
    assert cases["vitstem uint8 NHWC, preprocessing in graph"]["traffic_bytes"] == BATCH * 16 * 16 * 3 + BATCH * T * D * 4


def test_floor_bytes_are_its_tensors(report):
    _, raw = report
    floor = next(c for c in raw["parts"][0]["cases"] if c["name"] == "floor fp32")
    [(name, _, moved)] = floor["profile"]["nodes"]
    assert "MatMul" in name and moved == (BATCH * N * K + BATCH * N * D) * 4  # x in, y out; the kernel is a weight


def test_per_node_rows_add_up(report):
    md, raw = report
    for case in raw["parts"][0]["cases"]:
        rows = table_rows(md, f"### {case['name']}, batch {BATCH}, 1 thread(s)")
        nodes = [r for r in rows if not r[0].startswith(("sum of", "nodes of", "profiled"))]
        total = float(next(r for r in rows if r[0] == "sum of the rows above")[1])
        assert abs(sum(float(r[1]) for r in nodes) - total) <= 0.1 * len(nodes)
        assert sum(float(r[2].rstrip("%")) for r in nodes) == pytest.approx(100, abs=0.1 * len(nodes))
        assert [r[0].removesuffix(" (product)") for r in nodes] == [n for n, _, _ in case["profile"]["nodes"]]
        one_run, session_run = case["profile"]["node_sum_us"], case["profile"]["run_us"]
        assert 0 < one_run <= session_run
        assert 0.5 * one_run <= total <= 2 * one_run  # medians per node vs the median run's nodes
        assert sum("(product)" in r[0] for r in nodes) == 1
    assert re.search(r"\| embed/Cast \(Cast\) \|", md)  # uint8 frames are cast after the patchify


def test_each_row_profiles_the_projection_it_names(report):
    # the default NCHW graph gathers its patches; the benchmark-only rows force the Conv and the Transpose
    _, raw = report
    ops = {c["name"]: {n.split("(")[-1].rstrip(")") for n, _, _ in c["profile"]["nodes"]} for c in raw["parts"][0]["cases"]}
    assert "Gather" in ops["vitstem fp32, dynamic batch"] and "Conv" not in ops["vitstem fp32, dynamic batch"]
    assert "Conv" in ops["vitstem fp32, NCHW input, Conv"] and "Gather" not in ops["vitstem fp32, NCHW input, Conv"]
    assert "Transpose" in ops["vitstem fp32, NCHW input, Transpose patchify"]
    assert "MatMul" in ops["vitstem fp32, NCHW input, Transpose patchify"]
