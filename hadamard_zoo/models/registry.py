"""The model registry: ``list_models``, ``create_model``, ``model_info``.

Variants come from ``zoo_configs/*.yaml`` (see :mod:`hadamard_zoo.configs`); a
model is ``builder(**variant_arguments, **overrides)``, then, if asked,
pretrained weights from ``weights/manifest.json``.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools

from hadamard_zoo import configs


@functools.lru_cache(maxsize=1)
def _families():
    return configs.load_all()


def _variants():
    out = {}
    for fam in _families().values():
        out.update(fam.variants)
    return out


def reload_configs():
    """Re-read ``zoo_configs/`` (after editing a YAML file in a session)."""
    _families.cache_clear()


def list_families() -> list[str]:
    return sorted(_families())


def list_models(pattern: str = "*", family: str | None = None, pretrained: bool = False) -> list[str]:
    """Sorted names of every registered variant matching the glob ``pattern``.

    ``family`` keeps one family's variants; ``pretrained=True`` (as in timm) only the
    variants with a checkpoint in ``weights/manifest.json``.
    """
    names = [n for n, v in _variants().items() if family is None or v.family == family]
    if pretrained:
        from hadamard_zoo import pretrained as _pretrained

        names = [n for n in names if _pretrained.entries_for(n)]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_config(name: str) -> configs.VariantConfig:
    variants = _variants()
    if name in variants:
        return variants[name]
    families = _families()
    if name in families:
        return variants[families[name].default_variant]
    close = difflib.get_close_matches(name, list(variants) + list(families), n=5)
    hint = f" Did you mean {close}?" if close else ""
    raise ValueError(
        f"Unknown model name {name!r}.{hint} hadamard_zoo.models.list_models() lists all "
        f"{len(variants)} models; families: {sorted(families)}."
    )


def create_model(model_name: str, /, pretrained=False, weights=None, **overrides):
    """Build a registered model: ``create_model("starnet_s1", num_classes=10)``.

    Args:
        model_name: a variant name (see :func:`list_models`) or a family name (its default
            variant).  Positional-only, so ``name=`` stays free for the model's Keras name.
        pretrained: False; True for the family's default checkpoint; a checkpoint tag
            from ``weights/manifest.json``; or a path to a ``.weights.h5`` file.
        weights: keras.applications spelling of ``pretrained`` (None means False;
            a tag or a path as above).  Give one of the two, not both.
        **overrides: builder arguments replacing the variant's (``num_classes``,
            ``input_shape``, ``include_top``, ...).  ``classes`` is accepted as an
            alias of ``num_classes`` for keras.applications users.  With ``pretrained``,
            changing the head (``num_classes``, ``include_top=False``, ``pooling``,
            ``classifier_activation``) loads the checkpoint's backbone and leaves the new
            head at its initialization, as timm does: the fine-tuning route.
    """
    cfg = get_config(model_name)
    if weights is not None and pretrained not in (False, None):
        raise ValueError("Pass either pretrained= or weights=, not both.")
    if weights is not None:
        pretrained = weights
    if "classes" in overrides:
        if "num_classes" in overrides and overrides["num_classes"] != overrides["classes"]:
            raise ValueError(
                f"classes={overrides['classes']} and num_classes={overrides['num_classes']} disagree; pass one."
            )
        overrides["num_classes"] = overrides.pop("classes")
    builder = cfg.builder_fn()
    checkpoint = None
    if pretrained not in (False, None):
        from hadamard_zoo import pretrained as _pretrained

        checkpoint = _pretrained.resolve(cfg.name, pretrained)  # once: the loads below take it as is
    base = {**cfg.arguments, **(checkpoint.model_args if checkpoint is not None else {})}  # e.g. an LM tokenizer
    arguments = {**base, **overrides}
    try:
        configs._check_arguments(builder, overrides, f"create_model({cfg.name!r})")
    except configs.ConfigError as exc:
        raise ValueError(str(exc)) from None
    if _takes(builder, "name"):
        arguments.setdefault("name", cfg.name)
    model = builder(**arguments)
    if checkpoint is not None:
        head_changes = {k: v for k, v in overrides.items() if k in HEAD_ARGUMENTS and v != base.get(k, _UNSET)}
        if head_changes:
            # timm's convention: the checkpoint's backbone, a new (or no) head
            _pretrained.load_backbone(model, cfg.name, checkpoint, changed=sorted(head_changes))
        else:
            _pretrained.load_pretrained(model, cfg.name, checkpoint)
    return model


#: Builder arguments that change only a classifier's head: with ``pretrained=``, the
#: checkpoint's backbone is loaded and the head is left at its initialization (or dropped).
HEAD_ARGUMENTS = ("num_classes", "include_top", "pooling", "classifier_activation")
_UNSET = object()


def _takes(fn, arg):
    import inspect

    return arg in inspect.signature(fn).parameters


def model_info(name: str) -> dict:
    """Facts about a variant: family, paper, reference, licence, params, weights."""
    cfg = get_config(name)
    from hadamard_zoo import pretrained as _pretrained

    checkpoints = [e["name"] for e in _pretrained.entries_for(cfg.name)]
    return {
        "name": cfg.name,
        "family": cfg.family,
        "kind": cfg.kind,
        "paper": cfg.paper,
        "reference": cfg.reference,
        "license": cfg.license,
        "published_params": cfg.meta.get("params"),
        "arguments": dict(cfg.arguments),
        "input_shape": cfg.arguments.get("input_shape"),
        "pretrained": checkpoints,
        "has_pretrained": bool(checkpoints),
        "config_file": cfg.source,
    }


def family_function(family: str):
    """``models.<family>(variant=None, **kwargs)``: the family's builder by name."""

    def build(variant: str | None = None, **kwargs):
        fam = _families()[family]
        name = variant or fam.default_variant
        if name not in fam.variants:
            raise ValueError(
                f"{family} has no variant {name!r}; variants: {sorted(fam.variants)}."
            )
        return create_model(name, **kwargs)

    build.__name__ = family
    build.__doc__ = (
        f"Build a {family} model: ``{family}(variant=None, pretrained=False, **overrides)``.\n\n"
        f"``variant`` defaults to the family's default; see ``list_models(family={family!r})``."
    )
    return build


def variant_function(name: str):
    def build(**kwargs):
        return create_model(name, **kwargs)

    build.__name__ = name
    build.__doc__ = f"Build ``{name}``: ``create_model({name!r}, **kwargs)`` (see model_info({name!r}))."
    return build
