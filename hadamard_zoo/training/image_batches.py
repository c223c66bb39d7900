"""Image batches for ``model.fit``: in-memory uint8 arrays, shuffled and augmented in numpy per (seed, epoch, batch)."""

from __future__ import annotations

import math

import keras
import numpy as np

from hadamard_zoo.training.augment import cutout, mix_batch, random_crop_flip


class ArrayBatches(keras.utils.PyDataset):
    """Batches of ``(float32 images in [0, 255], labels)`` from in-memory arrays.

    Labels are int32 ``(N,)``; with ``mixup`` or ``cutmix`` (Beta parameters, :func:`mix_batch`)
    they are float32 soft targets ``(N, num_classes)``. With ``shuffle``, each epoch's order
    is a permutation seeded by ``(seed, epoch)``; augmentation draws from ``(seed, epoch,
    batch)``. :class:`~hadamard_zoo.training.callbacks.EpochSync` sets the epoch, so a resumed run repeats an
    uninterrupted run's batches.
    """

    def __init__(self, x, y, batch_size, shuffle=False, seed=0, crop_padding=0, flip=False, cutout=0,
                 mixup=0.0, cutmix=0.0, num_classes=None):
        super().__init__()
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels.")
        if len(x) == 0:
            raise ValueError("no samples to batch.")
        self.x, self.y = x, np.asarray(y).astype(np.int32)
        self.batch_size = int(batch_size)
        self.shuffle, self.seed = shuffle, int(seed)
        self.crop_padding, self.flip = int(crop_padding or 0), bool(flip)
        self.cutout = int(cutout or 0)
        if self.cutout < 0:
            raise ValueError(f"cutout is the side of the erased square in pixels (>= 0), got {cutout}.")
        self.mixup, self.cutmix = float(mixup or 0.0), float(cutmix or 0.0)
        if self.mixup < 0 or self.cutmix < 0:
            raise ValueError(f"mixup and cutmix are Beta parameters >= 0, got {mixup} and {cutmix}.")
        if (self.mixup or self.cutmix) and not num_classes:
            raise ValueError("mixup/cutmix make soft targets: pass num_classes.")
        self.num_classes = int(num_classes) if num_classes else None
        self.epoch = 0
        self._order = None

    def set_epoch(self, epoch):
        if epoch != self.epoch:
            self.epoch, self._order = int(epoch), None

    def order(self):
        if self._order is None:
            n = len(self.x)
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        return self._order

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, idx):
        sel = self.order()[idx * self.batch_size : (idx + 1) * self.batch_size]
        if not self.shuffle:
            sel = slice(int(sel[0]), int(sel[-1]) + 1)
        xb, yb = self.x[sel], self.y[sel]
        if self.crop_padding or self.flip:
            rng = np.random.default_rng([self.seed, self.epoch, int(idx), 7])
            xb = random_crop_flip(xb, rng, self.crop_padding, self.flip)
        xb = xb.astype(np.float32)  # a fresh batch, never a view of self.x
        if self.cutout:
            cutout(xb, np.random.default_rng([self.seed, self.epoch, int(idx), 11]), self.cutout)
        if self.mixup or self.cutmix:
            rng = np.random.default_rng([self.seed, self.epoch, int(idx), 13])
            xb, yb = mix_batch(xb, yb, self.num_classes, rng, self.mixup, self.cutmix)
        return xb, yb
