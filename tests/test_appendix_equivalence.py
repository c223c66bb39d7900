"""Our Keras models/layers compute the functions of the survey's appendix S.2.2.

The PyTorch modules below are written here from the survey's equations and
descriptions (CCP: Eq. 2; NCP: Eq. NCP as in the appendix's NCP ``Pinet``;
MONet's ``PolyMlp`` / ``PolyBlock``), not copied from the appendix listing.
They run in float64 and serve as ground truth: the same weights are loaded
into them and into the Keras objects (any backend), and outputs must agree to
1e-5.  torch is installed in every CI environment, so it is imported directly.

Also: a CCP / NCP stack evaluated at ``t * z`` is a polynomial in ``t`` of
exactly the configured degree (no activation, no normalisation).
"""

import keras
import numpy as np
import pytest
import torch
from helpers import BACKEND, assert_close, rand, to_np
from torch import nn

from hadamard_zoo import models
from hadamard_zoo.layers import CCPPolynomial, MuLayer, NCPPolynomial, PolyBlock



# ------------------------------------------------------------ torch references
class CCPPinetRef(nn.Module):
    """x_1 = U_1 z; x_n = (U_n z) * x_{n-1} + x_{n-1}; logits = C x_N + beta."""

    def __init__(self, in_features, hidden, degree, n_classes):
        super().__init__()
        self.U = nn.ModuleList(nn.Linear(in_features, hidden) for _ in range(degree))
        self.fc_out = nn.Linear(hidden, n_classes)

    def forward(self, images):
        z = images.reshape(images.shape[0], -1)
        x = self.U[0](z)
        for proj in self.U[1:]:
            x = proj(z) * x + x
        return self.fc_out(x)


class NCPPinetRef(nn.Module):
    """x_1 = A_1 z; x_n = (A_n z) * (S_n x_{n-1} + b_n); logits = C x_N + beta."""

    def __init__(self, in_features, hidden, degree, n_classes):
        super().__init__()
        self.A = nn.ModuleList(nn.Linear(in_features, hidden) for _ in range(degree))
        self.S = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(degree - 1))
        self.fc_out = nn.Linear(hidden, n_classes)

    def forward(self, images):
        z = images.reshape(images.shape[0], -1)
        x = self.A[0](z)
        for a, s in zip(self.A[1:], self.S):
            x = a(z) * s(x)
        return self.fc_out(x)


def shift_ref(x):
    """MONet's spatial shift of (B, H, W, C): quarters moved +H, -H, +W, -W, borders kept."""
    c = x.shape[-1]
    q = [0, c // 4, c // 2, 3 * c // 4, c]
    g = [x[..., q[i] : q[i + 1]] for i in range(4)]
    return torch.cat(
        [
            torch.cat([g[0][:, :1], g[0][:, :-1]], 1),
            torch.cat([g[1][:, 1:], g[1][:, -1:]], 1),
            torch.cat([g[2][:, :, :1], g[2][:, :, :-1]], 2),
            torch.cat([g[3][:, :, 1:], g[3][:, :, -1:]], 2),
        ],
        -1,
    )


class MuLayerRef(nn.Module):
    """C(LN1(U1 x) + alpha * LN1(U1 x) * LN3(U3 U2 x)), optional shift of U1 x and U2 x."""

    def __init__(self, d, h, out, spatial):
        super().__init__()
        self.U1, self.U2, self.U3 = nn.Linear(d, h), nn.Linear(d, h // 8), nn.Linear(h // 8, h)
        self.C = nn.Linear(h, out)
        self.norm1, self.norm3 = nn.LayerNorm(h, eps=1e-6), nn.LayerNorm(h, eps=1e-6)
        self.alpha = nn.Parameter(torch.ones(1))
        self.spatial = spatial

    def forward(self, x):
        a, b = self.U1(x), self.U2(x)
        if self.spatial:
            a, b = shift_ref(a), shift_ref(b)
        a, b = self.norm1(a), self.norm3(self.U3(b))
        return self.C(a + self.alpha * (a * b))


class PolyBlockRef(nn.Module):
    """x + Mu1(LN(x)), then + Mu2(LN(x)) with the same LN (eps 1e-6)."""

    def __init__(self, d, expansion=3):
        super().__init__()
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.mlp1 = MuLayerRef(d, d, d, spatial=True)
        self.mlp2 = MuLayerRef(d, expansion * d, d, spatial=False)

    def forward(self, x):
        x = x + self.mlp1(self.norm(x))
        return x + self.mlp2(self.norm(x))


# ------------------------------------------------------------ weight transfer
def _randomize(module, seed):
    """Non-trivial values everywhere (LayerNorm scales/offsets and alpha included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 0.3 if name.endswith("weight") and p.ndim == 2 else 0.2
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    return module.double()


def _np(t):
    return t.detach().to(torch.float32).numpy()


def _set_dense(dense, linear):
    dense.kernel.assign(_np(linear.weight).T)
    dense.bias.assign(_np(linear.bias))


def _set_norm(keras_norm, torch_norm):
    keras_norm.gamma.assign(_np(torch_norm.weight))
    keras_norm.beta.assign(_np(torch_norm.bias))


def _set_mu(layer, ref):
    for name in ("U1", "U2", "U3", "C"):
        _set_dense(getattr(layer, name), getattr(ref, name))
    _set_norm(layer.norm1, ref.norm1)
    _set_norm(layer.norm3, ref.norm3)
    layer.alpha.assign(_np(ref.alpha))


def _run_ref(ref, x):
    with torch.no_grad():
        return ref(torch.from_numpy(x.astype(np.float64))).numpy()


# ------------------------------------------------------------------- Pi-Nets
@pytest.mark.parametrize("kind", ["ccp", "ncp"])
def test_pinet_models_match_reference(kind):
    model = models.create_model(f"pinet_{kind}", include_preprocessing=False)
    poly = model.get_layer(f"{kind}_polynomial")
    degree, hidden = poly.degree, poly.units
    ref_cls = CCPPinetRef if kind == "ccp" else NCPPinetRef
    ref = _randomize(ref_cls(28 * 28, hidden, degree, 10), seed=1)
    # smaller input weights keep the degree-4 products O(1)
    with torch.no_grad():
        for lin in ref.U if kind == "ccp" else ref.A:
            lin.weight.mul_(0.1)
    if kind == "ccp":
        poly.kernels.assign(np.stack([_np(u.weight).T for u in ref.U]))
        poly.biases.assign(np.stack([_np(u.bias) for u in ref.U]))
    else:
        poly.a_kernels.assign(np.stack([_np(a.weight).T for a in ref.A]))
        poly.a_biases.assign(np.stack([_np(a.bias) for a in ref.A]))
        poly.s_kernels.assign(np.stack([_np(s.weight).T for s in ref.S]))
        poly.s_biases.assign(np.stack([_np(s.bias) for s in ref.S]))
    _set_dense(model.get_layer("fc_out"), ref.fc_out)
    x = rand((3, 28, 28, 1), 4)  # one channel: NHWC and NCHW flatten alike
    expected = _run_ref(ref, x.transpose(0, 3, 1, 2))
    assert np.abs(expected).max() > 0.1
    assert_close(to_np(model(x)), expected, 1e-5, 1e-5)


# --------------------------------------------------------------------- MONet
@pytest.mark.parametrize("spatial", [True, False])
def test_mu_layer_matches_reference(spatial):
    d, h, out = 12, 32, 8
    ref = _randomize(MuLayerRef(d, h, out, spatial), seed=2)
    layer = MuLayer(h, out, use_spatial_shift=spatial)
    x = rand((2, 3, 5, d), 5)
    layer(x)
    _set_mu(layer, ref)
    assert_close(to_np(layer(x)), _run_ref(ref, x), 1e-5, 1e-5)


def test_poly_block_matches_reference():
    d = 16
    ref = _randomize(PolyBlockRef(d), seed=3)
    block = PolyBlock(d)
    x = rand((2, 4, 3, d), 6)
    block(x)
    _set_norm(block.norm, ref.norm)
    _set_mu(block.mlp1, ref.mlp1)
    _set_mu(block.mlp2, ref.mlp2)
    assert_close(to_np(block(x)), _run_ref(ref, x), 1e-5, 1e-5)


# ---------------------------------------------------- polynomial degree check
def _poly_dtype():
    # JAX runs float32 unless x64 is enabled process-wide (which would leak into other tests)
    return "float32" if BACKEND == "jax" else "float64"


@pytest.mark.parametrize("cls, degree", [(CCPPolynomial, 2), (CCPPolynomial, 4), (NCPPolynomial, 3)])
def test_stack_is_a_polynomial_of_exact_degree(cls, degree):
    """f(t z) for a CCP/NCP stack is a polynomial in t of degree exactly N (survey Eq. 2 / NCP)."""
    dtype = _poly_dtype()
    layer = cls(4, degree=degree, dtype=dtype, kernel_initializer=keras.initializers.RandomNormal(stddev=0.5),
                bias_initializer=keras.initializers.RandomNormal(stddev=0.5))
    z = rand((1, 5), 11).astype(dtype)
    ts = np.linspace(-1.5, 1.5, 2 * degree + 9)
    batch = (ts[:, None] * z).astype(dtype)
    values = to_np(layer(batch)).astype(np.float64)  # (T, units)
    coef = np.polynomial.polynomial.polyfit(ts, values, degree + 3)  # (degree + 4, units), low to high
    scale = np.abs(coef).max()
    tol = 1e-9 if dtype == "float64" else 2e-4
    assert np.abs(coef[degree + 1 :]).max() <= tol * scale, coef
    assert np.abs(coef[degree]).max() >= 1e-3 * scale, coef
    residual = values - np.polynomial.polynomial.polyval(ts, coef[: degree + 1]).T
    assert np.abs(residual).max() <= 10 * tol * max(scale, 1.0)
