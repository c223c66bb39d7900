"""CoPE: layers, generators/discriminators of zoo_configs/cope.yaml, generate(), hinge-loss GAN loop."""

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, rand, roundtrip_keras, to_np
from numpy.polynomial import chebyshev

from hadamard_zoo import configs
from hadamard_zoo.layers import ConvPolynomial, CoPEPolynomial, PolynomialInjection, ProjectionDiscriminatorHead
from hadamard_zoo.models.architectures.cope import build_cope_discriminator, build_cope_generator, generate, polynomial_degree
from hadamard_zoo.training.gan import ConditionalGAN, sngan_adam, standing_batchnorm_statistics

CONFIG = Path(__file__).resolve().parent.parent / "zoo_configs" / "cope.yaml"


def _tiny_generator(normalization="batch", output_activation="tanh", fc_degrees=(1, 2), stages=(4, 4), out=(2,), **kw):
    n = len(stages)
    args = dict(
        image_size=2 * 2**n, channels=1, num_classes=3, latent_dim=3, fc_degrees=fc_degrees, fc_units=4,
        label_degrees=(2,), label_units=4, bottom_width=2, stage_channels=stages, stage_kernels=[3] * n,
        stage_strides=[2] * n, normalization=normalization, pre_output_degrees=out,
        output_activation=output_activation, name="tiny_g",
    )
    args.update(kw)
    return build_cope_generator(**args)


# ------------------------------------------------------------------ layers
def test_injection_matches_formula_shapes_and_roundtrip(tmp_path):
    layer = PolynomialInjection(name="inject")
    h_in, z_in, c_in = keras.Input((3, 3, 4)), keras.Input((5,)), keras.Input((3,))
    model = keras.Model([h_in, z_in, c_in], layer([h_in, z_in, c_in]))
    h, z, c = rand((2, 3, 3, 4), 0), rand((2, 5), 1), rand((2, 3), 2)
    out = to_np(model([h, z, c]))
    k0, b0, k1, b1 = (to_np(w) for w in (layer.kernels[0], layer.biases[0], layer.kernels[1], layer.biases[1]))
    expected = h * (z @ k0 + b0 + c @ k1 + b1)[:, None, None, :]
    assert_close(out, expected, 1e-5, 1e-5)
    assert layer.compute_output_shape([(None, 3, 3, 4), (None, 5), (None, 3)]) == (None, 3, 3, 4)
    assert len(layer.trainable_weights) == 4
    roundtrip_keras(model, tmp_path, [h, z, c])
    skip = PolynomialInjection(skip=True, use_bias=False, kernel_initializer=["ones", "zeros"])
    assert_close(to_np(skip([h, z, c])), h + h * z.sum(-1)[:, None, None, None], 1e-5, 1e-5)
    assert PolynomialInjection.from_config(skip.get_config()).get_config() == skip.get_config()


def test_injection_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"list \[h, z_1"):
        PolynomialInjection()(rand((2, 3, 3, 4)))
    with pytest.raises(ValueError, match="must be a vector"):
        PolynomialInjection()([rand((2, 3, 3, 4)), rand((2, 3, 5))])
    with pytest.raises(ValueError, match="2 kernel initializers for 1 variables"):
        PolynomialInjection(kernel_initializer=["ones", "ones"])([rand((2, 4)), rand((2, 5))])
    with pytest.raises(ValueError, match="kernel_initializer"):
        PolynomialInjection(kernel_initializer=[])
    with pytest.raises(ValueError, match="batch size"):
        PolynomialInjection()([rand((2, 3, 3, 4)), rand((3, 5))])


@pytest.mark.parametrize("with_condition", [True, False])
def test_cope_polynomial_matches_formula(with_condition):
    layer = CoPEPolynomial(4, degree=3)
    x, c = rand((3, 6), 0), rand((3, 2), 1)
    out = to_np(layer([x, c]) if with_condition else layer(x))
    w = {v.path.split("/")[-1]: to_np(v) for v in layer.weights}
    xr = x @ w["resize_kernel"] + w["resize_bias"]  # 6 != 4: the release's resize
    p, y = xr, xr @ w["first_kernel"] + w["first_bias"]
    if with_condition:
        c1 = c @ w["cond_kernel"] + w["cond_bias"]
        p, y = p + c1, y + c1
    for n in range(2):
        y = y + (y @ w["s_kernels"][n] + w["s_biases"][n]) * p
    assert_close(out, y, 1e-5, 1e-5)
    assert layer.compute_output_shape([(None, 6), (None, 2)]) == (None, 4)
    with pytest.raises(ValueError, match="built"):
        layer(x) if with_condition else layer([x, c])
    with pytest.raises(ValueError, match="degree"):
        CoPEPolynomial(4, degree=0)
    with pytest.raises(ValueError, match="units"):
        CoPEPolynomial(0)


def test_conv_polynomial_and_projection_head_formulas():
    conv_poly = ConvPolynomial(degree=3)
    h = rand((2, 4, 4, 3), 0)
    out = to_np(conv_poly(h))
    h2 = h * to_np(conv_poly.convs[0](h))
    assert_close(out, h * to_np(conv_poly.convs[1](h2)), 1e-5, 1e-5)
    with pytest.raises(ValueError, match="feature maps"):
        ConvPolynomial()(rand((2, 3)))

    head = ProjectionDiscriminatorHead(3, spectral_norm=False)
    phi, labels = rand((2, 2, 2, 5), 1), np.array([0, 2], "int32")
    out = to_np(head([phi, labels]))
    pooled = phi.sum(axis=(1, 2))
    psi, embed = to_np(head.psi.kernel), to_np(head.embed.kernel)
    assert_close(out, pooled @ psi + (embed[labels] * pooled).sum(-1, keepdims=True), 1e-5, 1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_layers_mixed_precision(policy):
    if policy == "mixed_float16" and BACKEND == "tensorflow":
        pytest.skip("mixed_float16 is covered on jax/torch (CONTRIBUTING)")
    keras.config.set_dtype_policy(policy)
    h, z, c = keras.Input((2, 2, 4)), keras.Input((3,)), keras.Input((2,))
    y = PolynomialInjection()([h, CoPEPolynomial(3, degree=2)([z, c]), c])
    model = keras.Model([h, z, c], ConvPolynomial(2)(y))
    out = model([rand((2, 2, 2, 4)), rand((2, 3), 1), rand((2, 2), 2)])
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)
    assert np.isfinite(to_np(keras.ops.cast(out, "float32"))).all()


# ------------------------------------------------------------------ models
_FAMILY = configs.load_family_file(CONFIG)
_SHAPES = {
    "cope_generator_cifar10": (32, 32, 3),
    "cope_generator_fmnist": (28, 28, 1),
    "cope_discriminator_cifar10": (32, 32, 3),
    "cope_discriminator_fmnist": (28, 28, 1),
}
# Counts derived by hand from the released Chainer definitions (see the notes in cope.yaml).
_TRAINABLE = {"cope_generator_cifar10": 4_099_591, "cope_discriminator_cifar10": 4_207_360}
_BUILT = {}


def _variant(name):
    if BACKEND == "jax" and "cifar10" in name:
        # The graph is backend-independent and is checked on tensorflow/torch; on JAX the
        # initializers compile once per weight shape (~30 XLA compiles: tens of seconds on 2 cores).
        pytest.skip("CIFAR-10-size variants are built on tensorflow/torch only (JAX init compile time)")
    if name not in _BUILT:
        v = _FAMILY.variants[name]
        _BUILT[name] = v.builder_fn()(**v.arguments, name=name)
    return _BUILT[name]


def test_config_lists_the_four_variants():
    assert sorted(_FAMILY.variants) == sorted(_SHAPES)
    assert _FAMILY.kind == "generator" and _FAMILY.default_variant == "cope_generator_cifar10"


@pytest.mark.parametrize("name", sorted(_SHAPES))
def test_zoo_variant_forward_shape_at_batch_2(name):
    model = _variant(name)
    labels = np.array([3, 7], "int32")
    if "generator" in name:
        z = np.random.default_rng(0).uniform(-1, 1, (2, model.inputs[0].shape[-1])).astype("float32")
        out = to_np(model([z, labels], training=True))
        assert out.shape == (2,) + _SHAPES[name]
        assert np.abs(out).max() <= 1.0  # tanh output
    else:
        out = to_np(model([rand((2,) + _SHAPES[name]), labels], training=True))
        assert out.shape == (2, 1)
    assert np.isfinite(out).all()
    if name in _TRAINABLE:
        assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == _TRAINABLE[name]


def test_registry_builds_variants_by_name():
    from hadamard_zoo import models

    assert models.list_models("cope_*") == sorted(_SHAPES)
    d = models.create_model("cope_discriminator_fmnist")
    assert d.name == "cope_discriminator_fmnist" and d.output_shape == (None, 1)
    g = models.cope(variant="cope_generator_fmnist")  # the family function
    assert g.name == "cope_generator_fmnist" and g.output_shape == (None, 28, 28, 1)
    with pytest.raises(ValueError, match="unknown argument"):
        models.create_model("cope_discriminator_fmnist", latent_dim=3)


@pytest.mark.parametrize("name", ["cope_generator_cifar10", "cope_generator_fmnist"])
def test_generators_have_no_activation_but_the_output_tanh(name):
    model = _variant(name)
    acts = [layer.name for layer in model.layers if isinstance(layer, (keras.layers.Activation, keras.layers.ReLU))]
    assert acts == ["tanh"]
    for layer in model.layers:
        act = getattr(layer, "activation", None)
        if act is not None and not isinstance(layer, keras.layers.Activation):
            assert act is keras.activations.linear, layer.name
    assert polynomial_degree((1, 3, 3), 6, (3, 3)) == 567  # the released generator, BN in inference mode


@pytest.mark.parametrize("fc_degrees, stages, out", [((1,), (4, 4), ()), ((2,), (4,), (2,))])
def test_generator_without_normalization_is_polynomial_of_derived_degree(fc_degrees, stages, out):
    """G(t z0, c) is a polynomial in t of degree prod(fc) * (#injections + 1) * prod(out polys)."""
    model = _tiny_generator(None, None, fc_degrees, stages, out, init_scale=1.0)
    degree = polynomial_degree(fc_degrees, len(stages), out)
    assert degree == (3 if out == () else 8)
    m = 4 * degree + 4
    # Chebyshev nodes on [-10, 10]: a wide range so that the top-degree term is not
    # swamped by the lower ones (it is what distinguishes degree D from D - 1 in float32)
    ts = 10.0 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
    z = (ts[:, None] * rand((1, 3), 5)).astype("float32")
    y = to_np(model([z, np.ones((m,), "int32")])).reshape(m, -1).astype("float64")
    scale = np.abs(y).max()

    def residual(d):
        coef = chebyshev.chebfit(ts, y, d)
        return np.abs(chebyshev.chebval(ts, coef).T - y).max() / scale

    exact, lower = residual(degree), residual(degree - 1)
    assert exact < 3e-6, f"not a polynomial of degree {degree}: residual {exact:.2e}"
    assert lower > max(100 * exact, 5e-5), f"degree is below {degree}: residual {lower:.2e}"


def test_generate_is_deterministic_and_documented_ranges():
    # no output tanh and unit init scale: outputs of order one, so the comparisons bite
    model = _tiny_generator(output_activation=None, init_scale=1.0)
    a = generate(model, [0, 1, 2, 1], seed=7)
    b = generate(model, [0, 1, 2, 1], seed=7, batch_size=3)  # BatchNorm in inference mode
    c = generate(model, [0, 1, 2, 1], seed=8)
    assert a.shape == (4, 8, 8, 1) and a.dtype == np.float32
    scale = np.abs(a).max()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * scale)
    assert np.abs(a - c).max() > 1e-2 * scale  # another seed, other images
    u8 = generate(model, [0, 1, 2, 1], seed=7, as_uint8=True)
    assert u8.dtype == np.uint8
    np.testing.assert_array_equal(u8, np.clip(np.round((a + 1) * 127.5), 0, 255).astype("uint8"))
    with pytest.raises(ValueError, match="non-negative integers"):
        generate(model, [-1])
    images = generate(_tiny_generator(init_scale=1.0), [2, 0], seed=1)  # tanh: [-1, 1]
    assert images.shape == (2, 8, 8, 1) and np.abs(images).max() <= 1.0


def test_generator_and_discriminator_keras_roundtrip(tmp_path):
    g = _tiny_generator(output_activation=None, init_scale=1.0)
    inputs = [rand((2, 3), 1), np.array([0, 2], "int32")]
    restored = roundtrip_keras(g, tmp_path, inputs)
    assert [type(layer).__name__ for layer in restored.layers] == [type(layer).__name__ for layer in g.layers]
    d = build_cope_discriminator(image_size=8, channels=1, num_classes=3, width=4, downsample=(True, False), name="tiny_d")
    (tmp_path / "d").mkdir()
    roundtrip_keras(d, tmp_path / "d", [rand((2, 8, 8, 1), 2), np.array([1, 0], "int32")])


def test_builder_argument_errors():
    with pytest.raises(ValueError, match="image_size"):
        build_cope_generator(image_size=30)
    with pytest.raises(ValueError, match="normalization"):
        _tiny_generator(normalization="layer")
    with pytest.raises(ValueError, match="first entry is True"):
        build_cope_discriminator(downsample=(False, True))
    from hadamard_zoo.models.architectures.cope import build_cope

    with pytest.raises(ValueError, match="unknown argument"):
        build_cope(role="discriminator", latent_dim=3)
    with pytest.raises(ValueError, match="role"):
        build_cope(role="encoder")


# ------------------------------------------------------------------ GAN loop
def test_gan_loop_steps_and_discriminator_learns_separable_toy():
    """Tiny GAN with n_dis=2: two steps on random data update both networks with finite
    losses; then, with the generator frozen (lr 0), the hinge D loss falls over 20
    discriminator steps on a trivially separable toy task (real images are all ones)."""
    g = _tiny_generator(init_scale=1.0)
    d = build_cope_discriminator(image_size=8, channels=1, num_classes=3, width=4, downsample=(True, False), name="tiny_d")
    gan = ConditionalGAN(g, d, num_classes=3, n_dis=2, g_batch_size=3, seed=0)
    gan.compile(d_optimizer=sngan_adam(1e-3), g_optimizer=sngan_adam(1e-3))
    snapshot = lambda m: [to_np(v) for v in m.trainable_weights]  # noqa: E731
    g0, d0 = snapshot(g), snapshot(d)

    x = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)).astype("float32")
    h = gan.fit(x, np.arange(16) % 3, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    assert all(np.isfinite(h[k]).all() for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert int(gan.optimizer.iterations) == 2
    assert int(gan.d_optimizer.iterations) == 4 and int(gan.g_optimizer.iterations) == 2
    for before, model in ((g0, g), (d0, d)):
        assert any(not np.array_equal(a, b) for a, b in zip(before, snapshot(model))), model.name

    gan.d_optimizer.learning_rate = 5e-3
    gan.g_optimizer.learning_rate = 0.0
    g1 = snapshot(g)
    ones = np.ones((8, 8, 8, 1), "float32")
    d_loss = np.array(gan.fit(ones, np.arange(8) % 3, batch_size=8, epochs=10, steps_per_epoch=1, verbose=0).history["d_loss"])
    assert np.isfinite(d_loss).all()
    assert d_loss[-3:].mean() < 0.7 * d_loss[:3].mean(), d_loss
    for a, b in zip(g1, snapshot(g)):
        np.testing.assert_array_equal(a, b)  # lr 0: the generator did not move


def test_gan_generator_moving_average_and_its_standing_statistics(tmp_path):
    """g_ema_momentum m: after one generator step the average is m * w0 + (1 - m) * w1 (all
    backends, the JAX step included); ema_generator() holds the average, leaves the live
    generator alone, and its recomputed BatchNorm statistics make inference mode equal
    training mode on the standing batch; load_ema restores a saved average."""
    from hadamard_zoo.models.architectures.cope import sample_noise

    g = _tiny_generator(init_scale=1.0)
    d = build_cope_discriminator(image_size=8, channels=1, num_classes=3, width=4, downsample=(True, False), name="tiny_d")
    gan = ConditionalGAN(g, d, num_classes=3, n_dis=2, g_batch_size=3, seed=0, g_ema_momentum=0.25)
    gan.compile(d_optimizer=sngan_adam(1e-2), g_optimizer=sngan_adam(1e-2))
    w0 = [to_np(v) for v in g.trainable_variables]
    np.testing.assert_array_equal(to_np(gan.g_ema_variables[0]), w0[0])  # starts at the weights
    x = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)).astype("float32")
    gan.fit(x, np.arange(16) % 3, batch_size=16, epochs=1, shuffle=False, verbose=0)  # one generator step
    assert int(gan.g_optimizer.iterations) == 1
    w1 = [to_np(v) for v in g.trainable_variables]
    assert any(not np.allclose(a, b) for a, b in zip(w0, w1))
    for a, b, e in zip(w0, w1, gan.g_ema_variables):
        np.testing.assert_allclose(to_np(e), 0.25 * a + 0.75 * b, rtol=1e-5, atol=1e-6)

    bn_live = [to_np(v) for v in g.non_trainable_variables]
    ema_g = gan.ema_generator(standing_samples=64, seed=3)
    for v, e in zip(ema_g.trainable_variables, gan.g_ema_variables):
        np.testing.assert_array_equal(to_np(v), to_np(e))
    for a, v in zip(w1, g.trainable_variables):
        np.testing.assert_array_equal(a, to_np(v))  # the live generator is untouched
    for a, v in zip(bn_live, g.non_trainable_variables):
        np.testing.assert_array_equal(a, to_np(v))
    z, c = sample_noise(64, 3, 3), (np.arange(64) % 3).astype("int32")
    np.testing.assert_allclose(to_np(ema_g([z, c], training=False)), to_np(ema_g([z, c], training=True)), rtol=1e-4, atol=1e-5)
    assert [l.momentum for l in ema_g._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)] == [
        l.momentum for l in g._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)
    ]  # momenta restored

    path = tmp_path / "ema.weights.h5"
    ema_g.save_weights(path)
    gan.reset_ema()
    np.testing.assert_array_equal(to_np(gan.g_ema_variables[0]), w1[0])
    gan.load_ema(path)
    for v, e in zip(ema_g.trainable_variables, gan.g_ema_variables):
        np.testing.assert_array_equal(to_np(v), to_np(e))
    assert standing_batchnorm_statistics(g, 3, 16) is g


def test_gan_moving_average_bad_arguments():
    g = _tiny_generator()
    d = build_cope_discriminator(image_size=8, channels=1, num_classes=3, width=4, downsample=(True, False), name="tiny_d")
    for bad in (1.0, -0.1, "0.9"):
        with pytest.raises(ValueError, match="g_ema_momentum"):
            ConditionalGAN(g, d, num_classes=3, g_ema_momentum=bad)
    plain = ConditionalGAN(g, d, num_classes=3)
    with pytest.raises(ValueError, match="no moving average"):
        plain.ema_generator()
    with pytest.raises(ValueError, match="num_samples"):
        standing_batchnorm_statistics(g, 3, 0)
