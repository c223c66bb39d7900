"""Pi-Net ResNet blocks and MONet layers: shapes, serialization, precision, arguments."""

import keras
import numpy as np
import pytest
import torch
from helpers import BACKEND, assert_close, rand, roundtrip_keras, to_np

from hadamard_zoo.layers import DropPath, MuLayer, PolyBlock, ProductPolynomialBlock, SymmetricMaxPooling2D


def _model(layer, shape):
    inp = keras.Input(shape)
    return keras.Model(inp, layer(inp))


def _policies():
    return ["mixed_bfloat16"] + ([] if BACKEND == "tensorflow" else ["mixed_float16"])


# ------------------------------------------------------- ProductPolynomialBlock
@pytest.mark.parametrize(
    "kwargs, in_shape, out_shape",
    [
        ({"filters": 8}, (6, 6, 8), (6, 6, 8)),
        ({"filters": 16, "strides": 2, "product_conv1x1": True, "use_relu": False}, (7, 6, 8), (4, 3, 16)),
        ({"filters": 12}, (5, 5, 8), (5, 5, 12)),
    ],
)
def test_product_block_shapes_and_roundtrip(kwargs, in_shape, out_shape, tmp_path):
    layer = ProductPolynomialBlock(**kwargs)
    model = _model(layer, in_shape)
    x = rand((2,) + in_shape)
    assert tuple(model(x).shape) == (2,) + out_shape
    assert layer.compute_output_shape((None,) + in_shape) == (None,) + out_shape
    assert layer.has_projection == (in_shape[-1] != kwargs["filters"] or kwargs.get("strides", 1) != 1)
    assert (layer.conv3 is not None) == kwargs.get("product_conv1x1", False)
    # non-trivial BN2 so the product term is exercised by the round trip
    layer.bn2.gamma.assign(np.ones(out_shape[-1], np.float32))
    roundtrip_keras(model, tmp_path, x)


def test_product_block_starts_as_its_shortcut():
    """zero_init_last_bn: F = 0 and BN3(0) = 0 at init, so y = ReLU(x) for an identity shortcut."""
    x = rand((2, 5, 5, 8))
    y = ProductPolynomialBlock(8)(x, training=False)
    assert_close(to_np(y), np.maximum(x, 0), 1e-6, 1e-6)


class _TorchProductBlock(torch.nn.Module):
    """The PiNet basic block from its equations (NCHW, PyTorch padding)."""

    def __init__(self, cin, cout, stride, use_relu, conv1x1):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.conv3 = nn.Conv2d(cout, cout, 1, bias=False) if conv1x1 else None
        self.bn3 = nn.BatchNorm2d(cout)
        self.use_relu = use_relu

    def forward(self, x):
        act = torch.relu if self.use_relu else (lambda t: t)
        f = self.bn2(self.conv2(act(self.bn1(self.conv1(x)))))
        s = x if self.down is None else self.down(x)
        p = f * s
        if self.conv3 is not None:
            p = self.conv3(p)
        return act(f + s + self.bn3(p))


def _copy_bn(keras_bn, torch_bn, rng):
    c = torch_bn.num_features
    vals = [rng.normal(size=c), rng.normal(size=c) * 0.1, rng.normal(size=c) * 0.1, rng.uniform(0.5, 1.5, size=c)]
    vals = [v.astype(np.float32) for v in vals]
    keras_bn.set_weights(vals)
    with torch.no_grad():
        for t, v in zip((torch_bn.weight, torch_bn.bias, torch_bn.running_mean, torch_bn.running_var), vals):
            t.copy_(torch.from_numpy(v))


def _copy_conv(keras_conv, torch_conv):
    k = to_np(keras_conv.kernel)  # (kh, kw, cin, cout)
    with torch.no_grad():
        torch_conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))))


@pytest.mark.parametrize("stride, use_relu, conv1x1", [(2, False, True), (1, True, False)])
def test_product_block_matches_torch_equations(stride, use_relu, conv1x1):
    cin, cout = (6, 8) if stride == 2 else (8, 8)
    layer = ProductPolynomialBlock(cout, strides=stride, use_relu=use_relu, product_conv1x1=conv1x1)
    x = rand((2, 6, 6, cin))
    layer(x)
    ref = _TorchProductBlock(cin, cout, stride, use_relu, conv1x1).eval()
    rng = np.random.default_rng(0)
    pairs = [(layer.conv1, ref.conv1), (layer.conv2, ref.conv2)]
    bns = [(layer.bn1, ref.bn1), (layer.bn2, ref.bn2), (layer.bn3, ref.bn3)]
    if ref.down is not None:
        pairs.append((layer.downsample_conv, ref.down[0]))
        bns.append((layer.downsample_bn, ref.down[1]))
    if conv1x1:
        pairs.append((layer.conv3, ref.conv3))
    for k, t in pairs:
        _copy_conv(k, t)
    for k, t in bns:
        _copy_bn(k, t, rng)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    assert_close(to_np(layer(x, training=False)), expected, 1e-5, 1e-5)


def test_symmetric_max_pool_matches_torch():
    x = rand((2, 7, 6, 3)) - 3.0  # negative values: zero padding would be wrong
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), 3, 2, 1)
    y = SymmetricMaxPooling2D(3, 2, 1)(x)
    assert tuple(y.shape) == (2, 4, 3, 3)
    assert_close(to_np(y), expected.numpy().transpose(0, 2, 3, 1), 0, 0)


# --------------------------------------------------------------- MONet layers
@pytest.mark.parametrize(
    "layer_fn, in_shape, out_shape",
    [
        (lambda: MuLayer(16, 8, use_spatial_shift=True), (4, 5, 8), (4, 5, 8)),
        (lambda: MuLayer(24, 6, use_alpha=False), (5, 8), (5, 6)),
        (lambda: PolyBlock(16, drop_path=0.2), (4, 4, 16), (4, 4, 16)),
    ],
)
def test_monet_layer_shapes_and_roundtrip(layer_fn, in_shape, out_shape, tmp_path):
    layer = layer_fn()
    model = _model(layer, in_shape)
    x = rand((2,) + in_shape)
    assert tuple(model(x).shape) == (2,) + out_shape
    assert tuple(layer.compute_output_shape((None,) + in_shape)) == (None,) + out_shape
    roundtrip_keras(model, tmp_path, x)


def test_mu_layer_matches_formula():
    layer = MuLayer(16, 4)
    x = rand((3, 6))
    layer(x)
    w = {v.path.split("/", 1)[1]: to_np(v) for v in layer.weights}
    w["alpha"] = np.array([0.3], np.float32)
    layer.alpha.assign(w["alpha"])

    def ln(t):
        return (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-6)

    a = ln(x @ w["U1/kernel"] + w["U1/bias"])
    b = ln((x @ w["U2/kernel"] + w["U2/bias"]) @ w["U3/kernel"] + w["U3/bias"])
    expected = (a + 0.3 * a * b) @ w["C/kernel"] + w["C/bias"]
    assert_close(to_np(layer(x)), expected, 1e-5, 1e-5)
    assert w["U2/kernel"].shape == (6, 2) and np.all(w["U1/bias"] == 1.0)


@pytest.mark.parametrize("policy", _policies())
def test_monet_and_pinet_layers_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    x = rand((2, 4, 4, 16))
    for layer in (PolyBlock(16), MuLayer(16, 8, use_spatial_shift=True), ProductPolynomialBlock(16, strides=2)):
        y = layer(x, training=False) if not isinstance(layer, MuLayer) else layer(x)
        assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
        assert all(w.dtype == "float32" for w in layer.weights)
        assert np.all(np.isfinite(to_np(keras.ops.cast(y, "float32"))))


def test_poly_block_shares_one_norm():
    block = PolyBlock(16)
    block(rand((1, 2, 2, 16)))
    norms = [w.path for w in block.weights if "norm" in w.path and "mlp" not in w.path]
    assert sorted(norms) == sorted([f"{block.name}/norm/gamma", f"{block.name}/norm/beta"])
    # 2d (shared LN) + Mu(d, d, d) + Mu(d, 3d, d)
    d = 16

    def mu(din, h, out):
        return 1 + din * h + h + din * (h // 8) + h // 8 + (h // 8) * h + h + 4 * h + h * out + out

    assert sum(int(np.prod(w.shape)) for w in block.weights) == 2 * d + mu(d, d, d) + mu(d, 3 * d, d)


def test_drop_path():
    x = np.ones((64, 2, 3), np.float32)
    layer = DropPath(0.5, seed=1)
    assert_close(to_np(layer(x)), x, 0, 0)
    y = to_np(layer(x, training=True))
    per_sample = y.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(1) == per_sample.max(1))  # whole samples dropped
    assert 0 < (per_sample[:, 0] == 0).sum() < 64


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ProductPolynomialBlock(0), "filters"),
        (lambda: ProductPolynomialBlock(8, strides=0), "strides"),
        (lambda: ProductPolynomialBlock(8, bn_momentum=1.5), "bn_momentum"),
        (lambda: SymmetricMaxPooling2D(3, 2, 2), "padding"),
        (lambda: MuLayer(4, 8), "hidden_features must be >= 8"),
        (lambda: MuLayer(16, 0), "out_features"),
        (lambda: MuLayer(16, 8, epsilon=0), "epsilon"),
        (lambda: PolyBlock(16, drop_path=1.0), "drop_path"),
        (lambda: PolyBlock(4), "embed_dim"),
        (lambda: DropPath(-0.1), "rate"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_input_shapes():
    with pytest.raises(ValueError, match="height, width, channels"):
        MuLayer(16, 8, use_spatial_shift=True).build((None, 5, 8))
    with pytest.raises(ValueError, match="embed_dim == channels"):
        PolyBlock(16).build((None, 4, 4, 8))
    with pytest.raises(ValueError, match="height, width, channels"):
        ProductPolynomialBlock(8).build((None, 4, 8))
