"""VitStemLayer as a Keras 3 citizen: config round-trip, .keras files, keras.Model, tf.function, keras-hub."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vitstem.backends.numpy import stem as reference
from vitstem.spec import init_weights, load_spec

TINY = "vitstem_tiny_test"  # NCHW, no preprocessing, cls + dist + 2 registers, dynamic sizes


def float_images(spec, hw=None, batch=2, seed=0):
    return np.random.default_rng(seed).standard_normal(spec.input_shape(batch, hw)).astype(np.float32)


def within_fast_bound(spec, weights, images, z, engines=1):
    from vitstem.backends.numpy.bound import fast_error_bound

    exact = reference.forward(spec, weights, images, profile="exact")
    return z.shape == exact.shape and bool(np.all(np.abs(z.astype(np.float64) - exact)
                                                  <= engines * fast_error_bound(spec, weights, images)))


def test_get_config_round_trips():
    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec(TINY).replace(pre_norm={"eps": 1e-6})
    layer = VitStemLayer(spec, profile="exact", name="stem")
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config  # plain JSON: spec as a dict, no weights
    assert config["spec"] == spec.to_dict() and config["profile"] == "exact" and config["name"] == "stem"
    assert not any(isinstance(v, np.ndarray) for v in config.values())
    clone = VitStemLayer.from_config(config)
    assert clone.spec == spec and clone.profile == "exact" and clone.name == "stem"
    assert clone.get_config() == config


@pytest.mark.slow
def test_keras_file_round_trips_with_weights(tmp_path):
    import keras

    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec("vit_tiny_patch16_224").replace(image_size=[32, 48], dynamic_image_size=True)
    weights = init_weights(spec, seed=1)
    inputs = keras.Input(shape=(3, None, None), dtype="uint8")
    model = keras.Model(inputs, VitStemLayer.from_weights(spec, weights, name="stem")(inputs))
    path = tmp_path / "stem.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    stem = loaded.get_layer("stem")
    assert isinstance(stem, VitStemLayer) and stem.spec == spec
    assert all(np.array_equal(stem.canonical_weights()[k], w) for k, w in weights.items())
    images = np.random.default_rng(2).integers(0, 256, spec.input_shape(2, (48, 32)), dtype=np.uint8)
    z = loaded.predict(images, verbose=0)
    assert np.array_equal(z, model.predict(images, verbose=0))
    assert within_fast_bound(spec, weights, images, z)


@pytest.mark.slow
def test_inside_a_keras_model_and_trainable():
    import keras
    import tensorflow as tf

    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec(TINY).replace(input={"layout": "NHWC", "preprocess": None}, pre_norm={"eps": 1e-6})
    weights = init_weights(spec, seed=3)
    stem = VitStemLayer.from_weights(spec, weights)
    inputs = keras.Input(shape=(None, None, 3))
    z = stem(inputs)
    assert tuple(z.shape) == (None, None, spec.embed_dim)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(z)))
    images = float_images(spec, hw=(20, 6))  # not the native 12x16: the table is resampled
    assert within_fast_bound(spec, weights, images, keras.Model(inputs, z).predict(images, verbose=0))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(images))
    grads = dict(zip([v.name for v in stem.trainable_variables], tape.gradient(loss, stem.trainable_variables)))
    assert set(grads) == set(weights)
    # Every weight, including pos_embed through the resampling matrices, receives a gradient.
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads.values())


@pytest.mark.slow
def test_exact_in_a_keras_model_has_the_reference_bits_and_gradients():
    # Keras predicts through a tf.function; exact then runs eagerly inside it (a tf.py_function),
    # so it keeps the reference's bits and still passes gradients to every variable.
    import keras
    import tensorflow as tf

    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec(TINY).replace(pre_norm={"eps": 1e-6})
    weights = init_weights(spec, seed=8)
    stem = VitStemLayer.from_weights(spec, weights, profile="exact")
    inputs = keras.Input(shape=(3, None, None))
    model = keras.Model(inputs, stem(inputs))
    images = float_images(spec, hw=(20, 6), seed=9)  # the table is resampled
    expected = reference.forward(spec, weights, images, profile="exact")
    assert np.array_equal(model.predict(images, verbose=0), expected)

    def loss():
        return tf.reduce_sum(tf.square(stem(images)))

    with tf.GradientTape() as tape:
        eager = loss()
    eager_grads = tape.gradient(eager, stem.trainable_variables)
    with tf.GradientTape() as tape:
        traced = tf.function(loss)()
    traced_grads = tape.gradient(traced, stem.trainable_variables)
    assert float(eager) == float(traced)  # the same z0 bits, reduced by the same kernel
    assert len(traced_grads) == len(weights)
    for e, t in zip(eager_grads, traced_grads):
        assert t is not None and float(tf.reduce_max(tf.abs(t))) > 0 and np.array_equal(e.numpy(), t.numpy())


def test_tf_function_with_unknown_image_sizes_traces_once():
    import tensorflow as tf

    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec(TINY)
    weights = init_weights(spec, seed=4)
    for profile in ("fast", "exact"):
        layer = VitStemLayer.from_weights(spec, weights, profile=profile)
        traced = tf.function(layer, input_signature=[tf.TensorSpec((None, 3, None, None), tf.float32)])
        for hw in [(12, 16), (8, 4), (24, 30)]:
            images = float_images(spec, hw=hw, seed=5)
            z = traced(images).numpy()
            if profile == "exact":
                assert np.array_equal(z, reference.forward(spec, weights, images, profile="exact"))
            else:
                assert within_fast_bound(spec, weights, images, z)
        assert traced.experimental_get_tracing_count() == 1
        with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of the patch size 4x2"):
            traced(tf.zeros((1, 3, 10, 16)))


@pytest.mark.slow
def test_matches_keras_hub_vit_stem():
    import keras
    from keras_hub.src.models.vit.vit_layers import ViTPatchingAndEmbedding

    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec({"spec_version": 1, "name": "hub", "image_size": [32, 48], "in_channels": 3,
                      "patch_size": [8, 8], "embed_dim": 16, "input": {"layout": "NHWC", "preprocess": None}})
    weights = init_weights(spec, seed=6)
    hub = ViTPatchingAndEmbedding(image_size=spec.image_size, patch_size=spec.patch_size,
                                  hidden_dim=spec.embed_dim, num_channels=spec.in_channels,
                                  data_format="channels_last")
    hub.build((None, *spec.image_size, spec.in_channels))
    hub.class_token.assign(weights["cls_token"])
    hub.patch_embedding.kernel.assign(weights["patch_embed.weight"].transpose(2, 3, 1, 0))  # OIHW -> HWIO
    hub.patch_embedding.bias.assign(weights["patch_embed.bias"])
    hub.position_embedding.embeddings.assign(weights["pos_embed"][0])  # keras-hub's table has no batch dim
    images = float_images(spec, seed=7)
    ours = VitStemLayer.from_weights(spec, weights)(images).numpy()
    theirs = keras.ops.convert_to_numpy(hub(images))
    # Two fast engines (our matmul, keras-hub's oneDNN conv): within twice the bound of each other.
    assert ours.shape == theirs.shape == (2, 1 + 24, 16)
    assert within_fast_bound(spec, weights, images, theirs)
    from vitstem.backends.numpy.bound import fast_error_bound

    assert np.all(np.abs(ours - theirs) <= 2 * fast_error_bound(spec, weights, images))
