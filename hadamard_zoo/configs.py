"""Model variants as data: load and validate ``zoo_configs/*.yaml``.

Each file describes one family::

    family: starnet                      # family function name: hadamard_zoo.models.architectures.starnet(...)
    builder: hadamard_zoo.models.architectures.starnet:build_starnet
    kind: image_classifier               # or language_model, kg_embedding, generator, ...
    paper: "Rewrite the Stars, Ma et al., CVPR 2024"
    reference: "https://github.com/ma-xu/Rewrite-the-Stars"
    license: "Apache-2.0"                # licence of the architecture's reference code
    default_variant: starnet_s1
    defaults: {input_shape: [224, 224, 3], num_classes: 1000}   # shared by every variant
    variants:
      starnet_s1: {base_dim: 24, depths: [2, 2, 8, 3], mlp_ratio: 4, params: 2868816}

``params`` (optional) is the published parameter count, checked by the tests.
Every other key of a variant (and of ``defaults``) must be an argument of the
builder; a key the builder does not take is an error that names the file,
the variant and the key.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_DIR_ENV = "HADAMARD_ZOO_CONFIGS"
_TOP_KEYS = {"family", "builder", "kind", "paper", "reference", "license", "default_variant", "defaults", "variants", "description"}
_REQUIRED_TOP = {"family", "builder", "variants"}
# Keys a variant may carry that are metadata, not builder arguments.
_META_KEYS = {"params", "description", "published", "notes"}


class ConfigError(ValueError):
    """A zoo config file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class VariantConfig:
    name: str
    family: str
    builder: str
    kind: str
    arguments: dict
    meta: dict
    paper: str = ""
    reference: str = ""
    license: str = ""
    source: str = ""

    def builder_fn(self):
        return import_builder(self.builder, self.source)


@dataclass
class FamilyConfig:
    family: str
    builder: str
    kind: str
    default_variant: str
    variants: dict = field(default_factory=dict)
    paper: str = ""
    reference: str = ""
    license: str = ""
    source: str = ""
    description: str = ""


def config_dir() -> Path:
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "zoo_configs"


def import_builder(path: str, source: str = "<config>"):
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ConfigError(f"{source}: builder {path!r} must look like 'package.module:function'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{source}: cannot import builder module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{source}: module {module_name!r} has no builder {attr!r}.") from None


def _check_arguments(fn, arguments: dict, where: str):
    sig = inspect.signature(fn)
    params = sig.parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = {n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    if not takes_kwargs:
        unknown = sorted(set(arguments) - allowed)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {unknown}; the builder {fn.__module__}.{fn.__name__} "
                f"accepts {sorted(allowed)} (plus metadata keys {sorted(_META_KEYS)})."
            )


def parse_family(data, source: str) -> FamilyConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at top level, got {type(data).__name__}.")
    missing = sorted(_REQUIRED_TOP - set(data))
    if missing:
        raise ConfigError(f"{source}: missing required key(s) {missing}.")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}.")
    variants = data["variants"]
    if not isinstance(variants, dict) or not variants:
        raise ConfigError(f"{source}: 'variants' must be a non-empty mapping of name -> arguments.")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: 'defaults' must be a mapping.")
    builder = import_builder(data["builder"], source)
    family = FamilyConfig(
        family=data["family"],
        builder=data["builder"],
        kind=data.get("kind", "model"),
        default_variant=data.get("default_variant") or next(iter(variants)),
        paper=data.get("paper", ""),
        reference=data.get("reference", ""),
        license=data.get("license", ""),
        source=source,
        description=data.get("description", ""),
    )
    if family.default_variant not in variants:
        raise ConfigError(
            f"{source}: default_variant {family.default_variant!r} is not one of the variants {sorted(variants)}."
        )
    _check_arguments(builder, {k: v for k, v in defaults.items() if k not in _META_KEYS}, f"{source}: defaults")
    for name, spec in variants.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: variant {name!r} must be a mapping, got {type(spec).__name__}.")
        merged = {**defaults, **spec}
        meta = {k: merged.pop(k) for k in list(merged) if k in _META_KEYS}
        _check_arguments(builder, merged, f"{source}: variant {name!r}")
        family.variants[name] = VariantConfig(
            name=name,
            family=family.family,
            builder=family.builder,
            kind=family.kind,
            arguments=merged,
            meta=meta,
            paper=family.paper,
            reference=family.reference,
            license=family.license,
            source=source,
        )
    return family


def load_family_file(path) -> FamilyConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_family(data, str(path))


def load_all(directory=None) -> dict[str, FamilyConfig]:
    directory = Path(directory) if directory else config_dir()
    if not directory.is_dir():
        raise ConfigError(
            f"zoo config directory {directory} not found; set {CONFIG_DIR_ENV} to the folder holding the *.yaml files."
        )
    families: dict[str, FamilyConfig] = {}
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        fam = load_family_file(path)
        if fam.family in families:
            raise ConfigError(f"{path}: family {fam.family!r} is also defined in {families[fam.family].source}.")
        for name in fam.variants:
            if name in seen:
                raise ConfigError(f"{path}: variant {name!r} is also defined in {seen[name]}.")
            seen[name] = str(path)
        families[fam.family] = fam
    return families
