"""Prebuilt models: ``create_model(name, **overrides)``, one function per family and variant.

>>> from hadamard_zoo import models
>>> models.list_models("starnet*")
>>> model = models.create_model("starnet_s1", num_classes=10)
>>> model = models.ncp_resnet(pretrained=True)        # the family's default variant

Family functions (``models.starnet``, ``models.ncp_resnet``...) and variant
functions (``models.starnet_s1``...) are generated from ``zoo_configs/``.
"""

from hadamard_zoo.models.registry import (
    create_model,
    get_config,
    list_families,
    list_models,
    model_info,
    reload_configs,
)


def __getattr__(name):
    from hadamard_zoo.models import registry

    if name.startswith("_"):
        raise AttributeError(name)
    if name in registry.list_families():
        return registry.family_function(name)
    if name in registry.list_models():
        return registry.variant_function(name)
    raise AttributeError(
        f"hadamard_zoo.models has no attribute {name!r}; list_models() and list_families() show what exists."
    )


def __dir__():
    from hadamard_zoo.models import registry

    return sorted(
        list(globals()) + registry.list_families() + registry.list_models()
    )
