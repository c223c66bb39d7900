"""Batch augmentation for image classifiers, in numpy (same result on every backend).

Every function takes a batch ``x`` of shape ``(N, H, W, C)`` and a
``numpy.random.Generator``; :class:`hadamard_zoo.training.classifier.ArrayBatches`
seeds that generator by ``(seed, epoch, batch)`` so a resumed run repeats an
uninterrupted one.

- :func:`random_crop_flip`: random ``H x W`` crops of the zero-padded image, horizontal flips.
- :func:`cutout`: one grey square per image (DeVries & Taylor, 2017).
- :func:`mix_batch`: MixUp (Zhang et al., 2018) or CutMix (Yun et al., 2019) of the batch
  with a permutation of itself; the labels become soft targets ``(N, num_classes)``.
"""

from __future__ import annotations

import math

import numpy as np

CUTOUT_FILL = 128.0  # mid-grey: close to zero after the models' own standardisation
MIX_SWITCH_PROB = 0.5  # with both MixUp and CutMix on, the chance that a batch uses CutMix (timm's default)


def random_crop_flip(x, rng, crop_padding=0, flip=False):
    """Random ``HxW`` crops of the zero-padded batch and random horizontal flips (numpy, vectorised)."""
    n, h, w = x.shape[:3]
    if crop_padding:
        p = int(crop_padding)
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        oy = rng.integers(0, 2 * p + 1, n)
        ox = rng.integers(0, 2 * p + 1, n)
        rows = (oy[:, None] + np.arange(h))[:, :, None]
        cols = (ox[:, None] + np.arange(w))[:, None, :]
        x = padded[np.arange(n)[:, None, None], rows, cols]
    if flip:
        mask = rng.random(n) < 0.5
        x = x.copy() if not crop_padding else x
        x[mask] = x[mask, :, ::-1]
    return x


def cutout(x, rng, size, fill=CUTOUT_FILL):
    """Cutout (DeVries & Taylor, 2017): one ``size x size`` square per image set to ``fill``.

    ``x``: ``(N, H, W, C)``. Each square spans rows ``[cy - size//2, cy - size//2 + size)``
    (columns likewise) with its centre ``(cy, cx)`` uniform over the image, so squares at
    the border are clipped, as in the paper. Returns ``x`` as float32: erased in place when
    it already is float32 (the input pipeline's own batch), else a converted copy.
    """
    x = np.asarray(x).astype(np.float32, copy=False)
    n, h, w = x.shape[:3]
    top = rng.integers(0, h, n) - int(size) // 2
    left = rng.integers(0, w, n) - int(size) // 2
    rows = np.arange(h)[None, :] - top[:, None]
    cols = np.arange(w)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    x[inside] = fill
    return x


def cutmix_box(h, w, lam, rng):
    """CutMix's box ``(top, bottom, left, right)`` for mixing ratio ``lam``.

    Its sides are ``H * sqrt(1 - lam)`` by ``W * sqrt(1 - lam)`` around a centre uniform over
    the image, clipped at the borders (as the CutMix paper's code and timm do).
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    top, bottom = int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + cut_h // 2, 0, h))
    left, right = int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + cut_w // 2, 0, w))
    return top, bottom, left, right


def mix_batch(x, y, num_classes, rng, mixup=0.0, cutmix=0.0, switch_prob=MIX_SWITCH_PROB):
    """MixUp or CutMix of a batch with a random permutation of itself (one ratio per batch).

    ``x``: ``(N, H, W, C)``; ``y``: ``(N,)`` integer labels in ``[0, num_classes)``.
    ``mixup`` and ``cutmix`` are the Beta(alpha, alpha) parameters (0: off). With both on,
    each batch uses CutMix with probability ``switch_prob``. With ``lam ~ Beta(alpha, alpha)``
    and ``j = perm(i)``:

    - MixUp: ``x_i <- lam * x_i + (1 - lam) * x_j``;
    - CutMix: a box of area ``(1 - lam) * H * W`` of ``x_i`` is replaced by ``x_j``'s, and
      ``lam`` becomes the share of pixels kept after clipping the box;

    and the target is ``lam * onehot(y_i) + (1 - lam) * onehot(y_j)``.

    Returns ``(x, targets)``: float32 ``(N, H, W, C)`` (mixed in place when ``x`` is already
    float32) and float32 ``(N, num_classes)``.
    """
    if mixup < 0 or cutmix < 0:
        raise ValueError(f"mixup and cutmix are Beta parameters >= 0, got mixup={mixup}, cutmix={cutmix}.")
    x = np.asarray(x).astype(np.float32, copy=False)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) to be mixed, got {y.min()}..{y.max()}.")
    onehot = np.eye(num_classes, dtype=np.float32)[y]
    if mixup <= 0 and cutmix <= 0:
        return x, onehot
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < switch_prob)
    alpha = cutmix if use_cutmix else mixup
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(len(x))
    if use_cutmix:
        h, w = x.shape[1:3]
        top, bottom, left, right = cutmix_box(h, w, lam, rng)
        x[:, top:bottom, left:right] = x[perm, top:bottom, left:right]  # fancy indexing copies first
        lam = 1.0 - (bottom - top) * (right - left) / float(h * w)
    else:
        partner = x[perm]  # a copy, taken before x changes
        x *= lam
        x += (1.0 - lam) * partner
    return x, lam * onehot + (1.0 - lam) * onehot[perm]
