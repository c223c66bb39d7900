"""Load a PyTorch StarNet ``state_dict`` (timm ``starnet_*`` or the authors' checkpoints) into Keras.

With PyTorch installed, and ``torch`` imported by the caller::

    from hadamard_zoo.models.convert_starnet import starnet_from_torch
    sd = torch.load("starnet_s1.pth.tar", map_location="cpu")      # {"state_dict": {...}} or the dict itself
    model = starnet_from_torch("starnet_s1", sd)                     # takes [0, 255] pixels, NHWC

Layouts: convolution ``(O, I, kh, kw)`` -> Keras ``(kh, kw, I, O)``; depthwise
``(C, 1, kh, kw)`` -> ``(kh, kw, C, 1)``; Linear ``(O, I)`` -> ``(I, O)``;
BatchNorm ``weight, bias, running_mean, running_var`` -> ``gamma, beta,
moving_mean, moving_variance`` (``num_batches_tracked`` is ignored).  The Keras
model's BatchNorms must use PyTorch's ``epsilon=1e-5`` (the zoo's StarNet does).

Nothing here imports torch: tensors are read through ``.detach().cpu().numpy()``
when they have it, else ``numpy.asarray``.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from hadamard_zoo.layers.starnet import StarBlock, StarConvBN

_TORCH_BN_EPS = 1e-5
_CONV = (2, 3, 1, 0)  # (O, I, kh, kw) -> (kh, kw, I, O)
_DEPTHWISE = (2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)
_LINEAR = (1, 0)  # (O, I) -> (I, O)


class StarNetConversionError(ValueError):
    """The state dict does not fit the Keras model; the message names the keys and shapes."""


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if hasattr(value, "float") and str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _unwrap(state_dict):
    if not hasattr(state_dict, "keys"):
        raise StarNetConversionError(f"expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}.")
    if "state_dict" in state_dict and hasattr(state_dict["state_dict"], "keys"):
        state_dict = state_dict["state_dict"]  # the authors' checkpoints (and timm's filter)
    keys = list(state_dict.keys())
    if keys and all(k.startswith("module.") for k in keys):  # saved from DataParallel / DDP
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _torch_prefix(layer_name):
    if layer_name == "stem":
        return "stem.0"
    m = re.fullmatch(r"stages_(\d+)_(\d+)", layer_name)
    if m:
        return f"stages.{m.group(1)}.{m.group(2)}"
    return None


def _conv_bn_entries(prefix, layer, where):
    """(torch key, keras variable, transpose, keras path) for a StarConvBN."""
    kernel_perm = _DEPTHWISE if layer.depthwise else _CONV
    conv = layer.conv
    entries = [
        (f"{prefix}.conv.weight", conv.kernel, kernel_perm, f"{where}/conv/kernel"),
        (f"{prefix}.conv.bias", conv.bias, None, f"{where}/conv/bias"),
    ]
    if layer.bn is not None:
        entries += _bn_entries(f"{prefix}.bn", layer.bn, f"{where}/bn")
    return entries


def _bn_entries(prefix, bn, where):
    if abs(bn.epsilon - _TORCH_BN_EPS) > 1e-12:
        raise StarNetConversionError(
            f"Keras BatchNormalization {where} has epsilon={bn.epsilon}; PyTorch's BatchNorm2d uses "
            f"{_TORCH_BN_EPS}, so the converted model would compute a different function. Build the model "
            f"with epsilon={_TORCH_BN_EPS} (the zoo's StarNet does)."
        )
    return [
        (f"{prefix}.weight", bn.gamma, None, f"{where}/gamma"),
        (f"{prefix}.bias", bn.beta, None, f"{where}/beta"),
        (f"{prefix}.running_mean", bn.moving_mean, None, f"{where}/moving_mean"),
        (f"{prefix}.running_var", bn.moving_variance, None, f"{where}/moving_variance"),
    ]


def _pointwise_entries(prefix, conv, where):
    return [
        (f"{prefix}.conv.weight", conv.kernel, _CONV, f"{where}/kernel"),
        (f"{prefix}.conv.bias", conv.bias, None, f"{where}/bias"),
    ]


def expected_entries(keras_model):
    """Every (torch key, Keras variable, transpose, Keras path) the model needs, in model order."""
    entries = []
    for layer in keras_model.layers:
        prefix = _torch_prefix(layer.name)
        if isinstance(layer, StarConvBN) and prefix is not None:
            entries += _conv_bn_entries(prefix, layer, layer.name)
        elif isinstance(layer, StarBlock) and prefix is not None:
            n = layer.name
            entries += _conv_bn_entries(f"{prefix}.dwconv", layer.dwconv, f"{n}/dwconv")
            entries += _pointwise_entries(f"{prefix}.f1", layer.f1, f"{n}/f1")
            entries += _pointwise_entries(f"{prefix}.f2", layer.f2, f"{n}/f2")
            entries += _conv_bn_entries(f"{prefix}.g", layer.g, f"{n}/g")
            entries += _conv_bn_entries(f"{prefix}.dwconv2", layer.dwconv2, f"{n}/dwconv2")
        elif layer.name == "norm" and isinstance(layer, keras.layers.BatchNormalization):
            entries += _bn_entries("norm", layer, "norm")
        elif layer.name == "head" and isinstance(layer, keras.layers.Dense):
            entries += [
                ("head.weight", layer.kernel, _LINEAR, "head/kernel"),
                ("head.bias", layer.bias, None, "head/bias"),
            ]
    if not entries:
        raise StarNetConversionError(
            f"model {keras_model.name!r} has no StarNet layers (stem, stages_i_j); build it with "
            "hadamard_zoo.models.create_model('starnet_...')."
        )
    return entries


def _optional_prefixes(keras_model):
    """Parts of a full checkpoint that a headless / features-only model legitimately lacks."""
    names = {layer.name for layer in keras_model.layers}
    optional = []
    if "head" not in names:
        optional.append("head.")
    if "norm" not in names:
        optional.append("norm.")
    return tuple(optional)


def _list(keys, limit=8):
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)} in all)"


def convert_starnet_state_dict(state_dict, keras_model, strict=True):
    """Copy a PyTorch StarNet ``state_dict`` into a zoo StarNet ``keras_model`` (in place).

    Args:
        state_dict: mapping of timm / authors' key names (``stem.0.conv.weight``,
            ``stages.1.2.f1.conv.weight``, ``head.weight``...) to torch tensors or
            numpy arrays; a checkpoint dict ``{"state_dict": ...}`` and ``module.``
            prefixes are accepted.
        keras_model: a model built by ``create_model("starnet_...")`` with the same
            variant (``include_top=False`` / ``features_only=True`` models skip the
            head / final norm keys).
        strict: raise on keys the model has no place for (else they are reported
            in the result and ignored).  Missing keys and shape mismatches always raise.

    Returns:
        dict with ``loaded`` (number of tensors copied), ``skipped`` (keys for
        parts the model does not have, e.g. ``head.*`` when headless) and
        ``unexpected`` (keys ignored with ``strict=False``).

    Raises:
        StarNetConversionError (a ``ValueError``): missing or unexpected keys (named),
        or shape mismatches (key, PyTorch shape, expected PyTorch shape and the Keras
        variable).  Nothing is assigned unless every check passes.
    """
    sd = _unwrap(state_dict)
    entries = expected_entries(keras_model)
    expected = {key for key, *_ in entries}
    ignorable = {k for k in sd if k.endswith("num_batches_tracked")}
    optional = _optional_prefixes(keras_model)
    skipped = sorted(k for k in sd if k not in expected and k not in ignorable and k.startswith(optional))
    unexpected = sorted(set(sd) - expected - ignorable - set(skipped))
    missing = [key for key, *_ in entries if key not in sd]
    problems = []
    if missing:
        problems.append(f"the state dict is missing {len(missing)} key(s) the Keras model needs: {_list(missing)}")
    if unexpected and strict:
        problems.append(
            f"the state dict has {len(unexpected)} unexpected key(s) with no place in {keras_model.name!r}: "
            f"{_list(unexpected)} (wrong variant? pass strict=False to ignore them)"
        )
    arrays = []
    for key, variable, perm, where in entries:
        if key not in sd:
            continue
        value = _to_numpy(sd[key])
        want_keras = tuple(variable.shape)
        want_torch = want_keras if perm is None else tuple(want_keras[perm.index(i)] for i in range(len(perm)))
        if tuple(value.shape) != want_torch:
            problems.append(
                f"shape mismatch for {key!r}: the state dict has {tuple(value.shape)}, the Keras variable "
                f"{where!r} of shape {want_keras} needs {want_torch} in PyTorch layout"
            )
            continue
        if perm is not None:
            value = np.transpose(value, perm)
        arrays.append((variable, np.ascontiguousarray(value)))
    if problems:
        raise StarNetConversionError(
            f"cannot load the StarNet state dict into {keras_model.name!r}:\n  - " + "\n  - ".join(problems)
        )
    for variable, value in arrays:
        variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))
    return {"loaded": len(arrays), "skipped": skipped, "unexpected": unexpected}


def starnet_from_torch(variant, state_dict, strict=True, **overrides):
    """Build ``variant`` (e.g. ``"starnet_s1"``) and load a PyTorch StarNet ``state_dict`` into it.

    ``num_classes`` defaults to the checkpoint's (``head.weight.shape[0]``);
    other ``overrides`` go to :func:`hadamard_zoo.models.create_model`
    (``include_preprocessing=False`` for inputs already normalized as in timm).
    """
    from hadamard_zoo.models.registry import create_model

    sd = _unwrap(state_dict)
    if "head.weight" in sd and "num_classes" not in overrides and "classes" not in overrides:
        overrides["num_classes"] = int(_to_numpy(sd["head.weight"]).shape[0])
    model = create_model(variant, **overrides)
    convert_starnet_state_dict(sd, model, strict=strict)
    return model
