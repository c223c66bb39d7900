"""Keras layers built on :mod:`hadamard_zoo.ops` (all serializable as ``hadamard_zoo>Name``)."""

from hadamard_zoo.layers.common import DropPath
from hadamard_zoo.layers.gating import GLU, Star
from hadamard_zoo.layers.polynomial import CCPPolynomial, NCPPolynomial
from hadamard_zoo.layers.monet import MuLayer, PolyBlock
from hadamard_zoo.layers.pinet_blocks import ProductPolynomialBlock, SymmetricMaxPooling2D
from hadamard_zoo.layers.cope import (
    ConvPolynomial,
    CoPEPolynomial,
    PolynomialInjection,
    ProjectionDiscriminatorHead,
)
from hadamard_zoo.layers.poly_sa import PolySA
from hadamard_zoo.layers.sequence import (
    AdaptiveSoftmax,
    GatedBottleneckBlock,
    GatedConv1D,
    GatedResidualBlock,
    GLUFeedForward,
    PositionEmbedding,
)
from hadamard_zoo.layers.attention import CausalLinearAttention
from hadamard_zoo.layers.depthwise import HadamardDepthwiseConv2D
from hadamard_zoo.layers.kg import RotatEScore
from hadamard_zoo.layers.starnet import StarBlock, StarConvBN
