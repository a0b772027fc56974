"""What test files share, in one place: test files import from here, never from each other.

- `seeded`: seeded image batches for any spec (`images_for`).
- `export_cases`: small specs, images, running an ONNX model in ORT or the onnx reference evaluator.
- `reference`: `assert_matches_reference`, the verdict `vitstem conform` gives, as an assertion;
  `assert_agrees`, a peer's z0 against our three backends within the error bound; `assert_backends_and_onnx`,
  exact bit-identical on every backend and in ONNX.
- `engine_runners`: every engine behind one call (`runners` fixture, `SPECS`, `ENGINES`, `valid_batch`).
- `fuzz`: hypothesis settings (`fuzz`, VITSTEM_FUZZ_EXAMPLES), valid spec documents, fuzz images.
- `timm_peers`, `hf_peers`, `keras_hub_peers`: tiny random timm / transformers / keras-hub models and their own z0.
- `whole_models`: tiny whole peers and pixels for the vitstem.deploy tests.
- `import_blocker`: a script running the edge runtime with every heavy import blocked.
- `newcomer_files`: a new user's checkpoint, save_pretrained directory and photo; `typed` command lines.
- `timm_registry`: timm's ViT-family registry built cheaply (also used by benchmarks/timm_registry_sweep.py).

pytest puts tests/ on sys.path (rootdir-relative, no __init__.py there), so `from support.X import ...` works
from every test file.
"""
