"""`make demo`: export the default preset, run its conformance matrix, print the verdict and where the report is."""

from __future__ import annotations


from .conformance.engines import ENGINES
from .conformance.runner import run
from .spec import DEFAULT_PRESET, init_weights, load_spec, save_weights


def demo(output="demo-output", *, full: bool = False, preset: str = DEFAULT_PRESET, seed: int = 0) -> int:
    """Write seeded weights and model.onnx for `preset` into `output`, run conformance, write the report.

    Returns the exit status: 0 when the verdict is pass. Engines that are not installed show as "not run".
    """
    from .outputs import output_directory

    out = output_directory(output)
    spec = load_spec(preset)
    weights = init_weights(spec, seed)
    weights_path = save_weights(weights, out / "weights.safetensors", spec)
    print(f"spec {spec.name} ({spec.digest()})\nweights (seed {seed}): {weights_path}")
    missing = ENGINES["onnxruntime"].missing()
    if missing is None:
        from .export import export_onnx

        print(f"exported: {export_onnx(spec, weights, out / 'model.onnx')}")
    else:
        print(f"export: skipped ({missing})")
    print(f"running the {'full' if full else 'default'} conformance matrix ...", flush=True)
    report = run(spec, weights_path, full=full, seed=seed, progress=True)
    print()
    print(report.table())
    print()
    print(f"report: {report.write_markdown(out / 'report.md')} (plots beside it)")
    print(f"json:   {report.write_json(out / 'report.json')}")
    return 0 if report.verdict == "pass" else 1
