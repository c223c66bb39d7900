"""Hadamard-critical ops, each with a ``keras.ops`` reference and per-backend fast paths.

Every function here validates its inputs, then dispatches (see
:mod:`hadamard_zoo.ops._dispatch`): the accelerated path of the active Keras
backend when one is registered and applies, else the reference
(``<name>_reference``), which defines the result.  Set
``HADAMARD_ZOO_FUSION=off`` or use ``with hadamard_zoo.ops.fusion(False):`` to
force the references.  On PyTorch, ``HADAMARD_ZOO_TORCH_COMPILE=1`` or
``with hadamard_zoo.ops.torch_compile():`` switches the element-wise paths
(star, GLU, CCP/NCP steps) to ``torch.compile``-generated fused kernels.
"""

from hadamard_zoo.ops._dispatch import (
    accelerated_impl,
    fusion,
    fusion_enabled,
    registered_ops,
    torch_compile,
    torch_compile_enabled,
)
from hadamard_zoo.ops.activations import canonical_activation, get_activation
from hadamard_zoo.ops.gating import glu, glu_reference, star, star_reference
from hadamard_zoo.ops.polynomial import (
    ccp,
    ccp_reference,
    ccp_step,
    ccp_step_reference,
    ncp,
    ncp_reference,
    ncp_step,
    ncp_step_reference,
)
from hadamard_zoo.ops.attention import (
    causal_linear_attention,
    causal_linear_attention_reference,
    linear_attention_step,
    linear_attention_step_reference,
)
from hadamard_zoo.ops.mu import (
    mu_product,
    mu_product_reference,
    spatial_shift,
    spatial_shift_reference,
)
from hadamard_zoo.ops.depthwise import depthwise_conv2d, depthwise_conv2d_reference
from hadamard_zoo.ops.rotate import (
    rotate_distance,
    rotate_distance_reference,
    rotate_score_all,
    rotate_score_all_reference,
)
from hadamard_zoo.ops.cope import cope_fusion, cope_fusion_reference
from hadamard_zoo.ops.poly_sa import poly_sa, poly_sa_reference
