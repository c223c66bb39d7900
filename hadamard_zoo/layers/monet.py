"""MONet's layers (Cheng et al., "Multilinear Operator Networks", ICLR 2024; survey appendix S.2.2).

* :class:`MuLayer`: the Mu-layer (``PolyMlp`` in the reference code), a
  degree-2 polynomial of its input token with a low-rank second branch::

      a = U1 x                   (d -> h)
      b = U3 U2 x                (d -> h/8 -> h)
      [spatial: U1 x and U2 x are spatially shifted before U3 / the norms]
      y = C( LN1(a) + alpha * LN1(a) * LN3(b) )      (h -> out)

  the Hadamard part through :func:`hadamard_zoo.ops.mu_product` and the shift
  through :func:`hadamard_zoo.ops.spatial_shift`.
* :class:`PolyBlock`: ``x += DropPath(Mu1(LN(x)))``; ``x += DropPath(Mu2(LN(x)))``
  with ONE LayerNorm shared by both sub-layers (eps 1e-6), Mu1 spatial with
  ``h = d``, Mu2 non-spatial with ``h = expansion_factor * d``.
* :class:`~hadamard_zoo.layers.DropPath` (per-sample stochastic depth) lives in
  :mod:`hadamard_zoo.layers.common`; it is re-exported here, its first home.

Initialisation follows the reference model: U1/U2/U3 Kaiming-normal (fan_in,
gain sqrt(2)) with biases 1; C Kaiming-normal with bias 0; LayerNorm 1/0;
``alpha`` 1.
"""

from __future__ import annotations

import keras
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_positive_int, check_rate
from hadamard_zoo.layers.common import DropPath, kaiming_normal  # also importable from here, their first home


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class MuLayer(keras.layers.Layer):
    """MONet's Mu-layer (``PolyMlp``): ``C(LN1(U1 x) + alpha * LN1(U1 x) * LN3(U3 U2 x))``.

    Input ``(batch, ..., d)`` (``(batch, H, W, d)`` when ``use_spatial_shift``);
    output ``(batch, ..., out_features)``.

    Args:
        hidden_features: ``h``, width of both branches (the low-rank branch has
            ``h // 8`` units in between, as in the reference; ``h >= 8``).
        out_features: width of the output projection ``C``.
        use_spatial_shift: shift ``U1 x`` and ``U2 x`` spatially
            (:func:`hadamard_zoo.ops.spatial_shift`) before ``U3`` and the norms.
        use_alpha: learnable scalar ``alpha`` (init 1) on the second-order term;
            False fixes it to 1.
        epsilon: of the two LayerNorms (MONet: 1e-6).
        kernel_initializer, bias_initializer: of U1, U2, U3 (reference: Kaiming normal, ones).
        output_kernel_initializer, output_bias_initializer: of C (reference model: Kaiming normal, zeros).

    Sub-layers (named as the reference's modules): ``U1``, ``U2``, ``U3``, ``C``
    (Dense) and ``norm1``, ``norm3`` (LayerNormalization, whose ``gamma``/``beta``
    the fused op uses); weight ``alpha`` of shape ``(1,)``.
    """

    def __init__(
        self,
        hidden_features,
        out_features,
        use_spatial_shift=False,
        use_alpha=True,
        epsilon=1e-6,
        kernel_initializer=None,
        bias_initializer="ones",
        output_kernel_initializer=None,
        output_bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        hidden_features = check_positive_int("hidden_features", hidden_features)
        out_features = check_positive_int("out_features", out_features)
        if hidden_features < 8:
            raise ValueError(
                f"hidden_features must be >= 8 (the low-rank branch has hidden_features // 8 units), "
                f"got {hidden_features}."
            )
        if not float(epsilon) > 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        self.hidden_features = hidden_features
        self.out_features = out_features
        self.rank_features = hidden_features // 8
        self.use_spatial_shift = bool(use_spatial_shift)
        self.use_alpha = bool(use_alpha)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or kaiming_normal())
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer or kaiming_normal())
        self.output_bias_initializer = keras.initializers.get(output_bias_initializer)

        def dense(units, name, kernel_init, bias_init):
            return keras.layers.Dense(
                units,
                kernel_initializer=keras.initializers.get(keras.initializers.serialize(kernel_init)),
                bias_initializer=keras.initializers.get(keras.initializers.serialize(bias_init)),
                name=name,
                dtype=self.dtype_policy,
            )

        h, r = hidden_features, self.rank_features
        self.U1 = dense(h, "U1", self.kernel_initializer, self.bias_initializer)
        self.U2 = dense(r, "U2", self.kernel_initializer, self.bias_initializer)
        self.U3 = dense(h, "U3", self.kernel_initializer, self.bias_initializer)
        self.C = dense(out_features, "C", self.output_kernel_initializer, self.output_bias_initializer)
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm1", dtype=self.dtype_policy)
        self.norm3 = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm3", dtype=self.dtype_policy)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if self.use_spatial_shift and len(input_shape) != 4:
            raise ValueError(
                f"MuLayer(use_spatial_shift=True) expects (batch, height, width, channels), got {input_shape}."
            )
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"MuLayer expects (batch, ..., features) with known features, got {input_shape}.")
        lead = input_shape[:-1]
        self.U1.build(input_shape)
        self.U2.build(input_shape)
        self.U3.build(lead + (self.rank_features,))
        self.norm1.build(lead + (self.hidden_features,))
        self.norm3.build(lead + (self.hidden_features,))
        self.C.build(lead + (self.hidden_features,))
        self.alpha = (
            self.add_weight(name="alpha", shape=(1,), initializer="ones") if self.use_alpha else None
        )

    def call(self, inputs):
        a = self.U1(inputs)
        b = self.U2(inputs)
        if self.use_spatial_shift:
            a = hops.spatial_shift(a)
            b = hops.spatial_shift(b)
        b = self.U3(b)
        y = hops.mu_product(
            a,
            b,
            self.alpha if self.use_alpha else 1.0,
            self.norm1.gamma,
            self.norm1.beta,
            self.norm3.gamma,
            self.norm3.beta,
            epsilon=self.epsilon,
        )
        return self.C(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_features,)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_features=self.hidden_features,
            out_features=self.out_features,
            use_spatial_shift=self.use_spatial_shift,
            use_alpha=self.use_alpha,
            epsilon=self.epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            output_kernel_initializer=keras.initializers.serialize(self.output_kernel_initializer),
            output_bias_initializer=keras.initializers.serialize(self.output_bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class PolyBlock(keras.layers.Layer):
    """MONet's Poly-Block: two Mu-layers with residuals and one shared LayerNorm.

    ``x = x + DropPath(mlp1(norm(x)))``; ``x = x + DropPath(mlp2(norm(x)))`` with
    ``mlp1 = MuLayer(d, d, spatial)``, ``mlp2 = MuLayer(expansion_factor * d, d)``
    and the same ``norm`` (LayerNorm, eps 1e-6) before both.  Degree up to 4 in
    the block input.

    Input and output ``(batch, H, W, embed_dim)`` (channels-last tokens).

    Args:
        embed_dim: ``d``, the channels of the input and output.
        expansion_factor: hidden width of ``mlp2`` is ``expansion_factor * d`` (MONet: 3).
        drop_path: stochastic-depth rate of both residual branches.
        epsilon: of every LayerNorm.
        seed: of the DropPath noise.

    Sub-layers: ``norm``, ``mlp1``, ``mlp2`` (:class:`MuLayer`), ``drop_path_layer``.
    """

    def __init__(self, embed_dim, expansion_factor=3, drop_path=0.0, epsilon=1e-6, seed=None, **kwargs):
        super().__init__(**kwargs)
        embed_dim = check_positive_int("embed_dim", embed_dim)
        expansion_factor = check_positive_int("expansion_factor", expansion_factor)
        drop_path = check_rate("drop_path", drop_path)
        if embed_dim < 8:
            raise ValueError(f"embed_dim must be >= 8 (the Mu-layers' low rank is width // 8), got {embed_dim}.")
        self.embed_dim = embed_dim
        self.expansion_factor = expansion_factor
        self.drop_path = float(drop_path)
        self.epsilon = float(epsilon)
        self.seed = seed
        d = embed_dim
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm", dtype=self.dtype_policy)
        self.mlp1 = MuLayer(d, d, use_spatial_shift=True, epsilon=self.epsilon, name="mlp1", dtype=self.dtype_policy)
        self.mlp2 = MuLayer(
            d * expansion_factor, d, use_spatial_shift=False, epsilon=self.epsilon, name="mlp2", dtype=self.dtype_policy
        )
        self.drop_path_layer = DropPath(self.drop_path, seed=seed, name="drop_path", dtype=self.dtype_policy)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"PolyBlock expects (batch, height, width, channels), got {input_shape}.")
        if input_shape[-1] != self.embed_dim:
            raise ValueError(
                f"PolyBlock(embed_dim={self.embed_dim}) got an input with {input_shape[-1]} channels "
                f"(shape {input_shape}); the residuals need embed_dim == channels."
            )
        self.norm.build(input_shape)
        self.mlp1.build(input_shape)
        self.mlp2.build(input_shape)
        self.drop_path_layer.build(input_shape)

    def call(self, inputs, training=None):
        x = ops.add(inputs, self.drop_path_layer(self.mlp1(self.norm(inputs)), training=training))
        return ops.add(x, self.drop_path_layer(self.mlp2(self.norm(x)), training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            embed_dim=self.embed_dim,
            expansion_factor=self.expansion_factor,
            drop_path=self.drop_path,
            epsilon=self.epsilon,
            seed=self.seed,
        )
        return config
