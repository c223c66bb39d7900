"""One module per model family: its builder (named in ``zoo_configs/<family>.yaml``) and family-specific helpers.

They live in this subpackage, not in :mod:`hadamard_zoo.models` itself, so that importing one
(``hadamard_zoo.models.architectures.starnet``) never shadows the family function
``hadamard_zoo.models.architectures.starnet(...)`` that the registry generates.
"""
