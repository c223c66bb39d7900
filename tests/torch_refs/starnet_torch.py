"""A PyTorch transcription of StarNet ("Rewrite the Stars", Ma et al., CVPR 2024).

Why this file exists: the tests and the benchmark compare the Keras StarNet and
its state-dict converter with a PyTorch StarNet.  timm's ``starnet`` is the
natural reference, but timm imports torchvision, and PyPI's torchvision does
not import next to the torch pinned here (torch 2.13.0: "operator
torchvision::nms does not exist"); the matching torch/torchvision pair would
replace the pinned torch.  So this is an independent transcription of the
published architecture (paper Sec. 4.1, the authors' ``imagenet/starnet.py``,
restated in /work/shared/reference/vision_anchors.md Sec. 3), written to

* compute the same function as timm's ``StarNet`` in eval mode, and
* expose **the same ``state_dict`` keys and shapes** as timm's
  ``timm/models/starnet.py`` (and the authors' checkpoints), e.g.
  ``stem.0.conv.weight``, ``stages.2.0.bn.running_var``,
  ``stages.2.3.dwconv.conv.weight``, ``stages.2.3.f1.conv.bias``,
  ``stages.2.3.g.bn.weight``, ``stages.2.3.dwconv2.conv.bias``,
  ``norm.running_mean``, ``head.weight``,

so a checkpoint of either loads into it with ``load_state_dict(strict=True)``.

Architecture, in our notation (NCHW; every convolution keeps its bias, also
the ones followed by BatchNorm; BN eps 1e-5, momentum 0.1):

* stem: Conv3x3/2 (3 -> 32) + BN, ReLU6;
* stage i (width ``base_dim * 2**i``): Conv3x3/2 + BN (no activation), then
  ``depths[i]`` blocks;
* block(d, r): ``u = BN(DW7x7(x))``; ``v = ReLU6(f1(u)) * f2(u)`` with f1, f2
  1x1 convs d -> r*d; ``w = DW7x7'(BN(g(v)))`` with g a 1x1 conv r*d -> d and
  the second depthwise conv without BN; ``y = x + DropPath(w)``;
* head: BN, global average pool, (dropout), Linear.

Not timm: no ``forward_intermediates``, no gradient checkpointing, no
``reset_classifier``; initialisation is PyTorch's default (the tests load
random weights into it anyway).
"""

from __future__ import annotations

import torch
from torch import nn

VARIANTS = {
    # name: (base_dim, depths, mlp_ratio)  -- timm / imagenet/starnet.py
    "starnet_s050": (16, (1, 1, 3, 1), 3),
    "starnet_s100": (20, (1, 2, 4, 1), 4),
    "starnet_s150": (24, (1, 2, 4, 2), 3),
    "starnet_s1": (24, (2, 2, 8, 3), 4),
    "starnet_s2": (32, (1, 2, 6, 2), 4),
    "starnet_s3": (32, (2, 2, 8, 4), 4),
    "starnet_s4": (32, (3, 3, 12, 5), 4),
}


def conv_bn(cin, cout, kernel, stride=1, groups=1, bn=True):
    """``conv`` (+ ``bn``) as a Sequential, so the keys are ``<prefix>.conv.*`` / ``<prefix>.bn.*``."""
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=True))
    if bn:
        seq.add_module("bn", nn.BatchNorm2d(cout))
    return seq


class DropPath(nn.Module):
    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class StarBlock(nn.Module):
    def __init__(self, dim, mlp_ratio, drop_path=0.0):
        super().__init__()
        hidden = mlp_ratio * dim
        self.dwconv = conv_bn(dim, dim, 7, groups=dim, bn=True)
        self.f1 = conv_bn(dim, hidden, 1, bn=False)
        self.f2 = conv_bn(dim, hidden, 1, bn=False)
        self.g = conv_bn(hidden, dim, 1, bn=True)
        self.dwconv2 = conv_bn(dim, dim, 7, groups=dim, bn=False)
        self.act = nn.ReLU6()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        u = self.dwconv(x)
        v = self.act(self.f1(u)) * self.f2(u)
        return x + self.drop_path(self.dwconv2(self.g(v)))


class StarNet(nn.Module):
    def __init__(self, base_dim=32, depths=(3, 3, 12, 5), mlp_ratio=4, num_classes=1000,
                 drop_path_rate=0.0, drop_rate=0.0, in_chans=3, stem_dim=32):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(in_chans, stem_dim, 3, stride=2), nn.ReLU6())
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, prev, k = [], stem_dim, 0
        for i, depth in enumerate(depths):
            dim = base_dim * 2 ** i
            blocks = [conv_bn(prev, dim, 3, stride=2)]
            for _ in range(depth):
                blocks.append(StarBlock(dim, mlp_ratio, rates[k]))
                k += 1
            stages.append(nn.Sequential(*blocks))
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(prev)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(prev, num_classes)

    def forward_features(self, x):
        return self.norm(self.stages(self.stem(x)))

    def forward(self, x):
        x = self.forward_features(x).mean(dim=(2, 3))
        return self.head(self.drop(x))


def starnet(variant="starnet_s1", **kwargs):
    base_dim, depths, mlp_ratio = VARIANTS[variant]
    return StarNet(base_dim, depths, mlp_ratio, **kwargs)


def count_parameters(model):
    """Trainable parameters, as timm and the paper count them (BN running stats are buffers)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def randomize_(model, seed=0):
    """Random weights *and* random BN statistics (eval-mode equivalence tests)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) * 1.5 + 0.5)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif name.endswith("bn.weight") or name == "norm.weight":
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.75)
            else:  # conv / linear kernels: variance-preserving scale
                fan_in = t[0].numel() if t.ndim > 1 else 1
                t.copy_(torch.randn(t.shape, generator=gen) / fan_in ** 0.5)
    return model
