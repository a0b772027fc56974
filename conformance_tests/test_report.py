"""The report in its three forms (terminal table, JSON, Markdown + PNG plots), the CLI and the demo."""

import io
import json

import pytest

from vitstem.cli import main
from vitstem.conformance import run
from vitstem.conformance.progress import Progress
from vitstem.spec import init_weights, load_spec, save_weights
from vitstem.spec.digest import weights_digest

RESULT_KEYS = {"engines", "profile", "precision", "batch", "layout", "image_size", "opset", "max_abs_diff", "bound",
               "passed", "max_ratio", "ulp_p50", "ulp_p99", "ulp_max", "cosine_min", "relative_rms", "kind"}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    spec = load_spec("vitstem_tiny_test")
    weights = init_weights(spec, seed=7)
    return save_weights(weights, tmp_path_factory.mktemp("w") / "w.safetensors", spec), weights


@pytest.fixture(scope="module")
def report(weights_file):
    return run("vitstem_tiny_test", weights_file[0], engines=["numpy", "onnxruntime"])


def test_json_has_the_verdict_digests_and_one_object_per_pair_and_cell(report, weights_file, tmp_path):
    data = json.loads(report.write_json(tmp_path / "sub" / "r.json").read_text())
    assert data["verdict"] == "pass"
    assert data["spec_digest"] == load_spec("vitstem_tiny_test").digest()
    assert data["weights_digest"] == weights_digest(weights_file[1])  # the file every engine loaded
    assert all(RESULT_KEYS <= set(r) for r in data["results"])
    pairs = {(tuple(r["engines"]), r["profile"], r["precision"], r["batch"], r["layout"], tuple(r["image_size"]),
              r["opset"]) for r in data["results"]}
    assert len(pairs) == len(data["results"])  # no duplicates
    ort13 = [r for r in data["results"] if r["engines"] == ["onnxruntime@13", "reference"]]
    assert ort13 and {r["opset"] for r in ort13} == {13}
    assert all(r["bound"] == 0 for r in data["results"] if r["kind"] == "exact")
    fast = [r for r in data["results"] if r["kind"] == "fast" and r["engines"] == ["numpy", "onnxruntime"]]
    assert fast and all(r["bound_factor"] == 2 for r in fast)


@pytest.mark.slow
def test_markdown_with_one_png_per_engine_pair(report, tmp_path):
    md = report.write_markdown(tmp_path / "out" / "report.md").read_text()
    pngs = sorted((tmp_path / "out").glob("report-*.png"))
    assert len(pngs) == len({engines for engines, _ in report.by_pair()})
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(f"]({p.name})" in md for p in pngs)
    assert "**Verdict: PASS**" in md and "| onnxruntime vs reference | fast |" in md
    assert "| pair | kind | cells | max\\|d\\| |" in md  # a | inside a header cell must not split it


def test_terminal_table_names_each_pair_and_the_verdict(report):
    table = report.table()
    assert "numpy vs onnxruntime" in table and "onnxruntime@13 vs reference" in table
    assert table.rstrip().endswith("verdict: PASS")


def test_progress_bar_is_plain_text():
    stream = io.StringIO()
    bar = Progress(20, stream=stream)
    for i in range(20):
        bar.update(i, "cell")
    bar.done()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[" + "." * 30 + "] 0/20") and lines[-1].startswith("[" + "#" * 30 + "] 20/20 done")
    assert len(lines) == 11  # not a terminal: one line per tenth, plus the end


@pytest.mark.slow
def test_cli_conform_writes_reports_and_exits_by_verdict(weights_file, tmp_path, capsys):
    code = main(["conform", "vitstem_tiny_test", "--weights", str(weights_file[0]), "--engines", "numpy",
                 "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"), "-q"])
    out = capsys.readouterr().out
    assert code == 0 and "verdict: PASS" in out
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "pass"
    assert (tmp_path / "r.md").is_file()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    assert main(["conform", "vitstem_tiny_test", "--weights", str(bad), "--engines", "numpy"]) == 2
    assert "is not a readable safetensors file" in capsys.readouterr().err


def test_cli_golden_needs_a_spec_or_suite(capsys):
    assert main(["golden", "-o", "/nonexistent-dir"]) == 2
    assert "give a SPEC" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_weights_model_and_report(tmp_path, capsys):
    from vitstem.demo import demo

    assert demo(tmp_path / "demo-output", preset="vitstem_tiny_test") == 0
    out = capsys.readouterr().out
    for name in ("weights.safetensors", "model.onnx", "report.md", "report.json"):
        assert (tmp_path / "demo-output" / name).is_file()
    assert "verdict: PASS" in out and f"report: {tmp_path / 'demo-output' / 'report.md'}" in out
