"""Canonizers: rewrite a block whose forward hides arithmetic from zennit's module hooks (a residual ``x + f(x)``, a
gate ``g(x) * x``, a functional pooling, attention, a recurrent loop) into hookable parts, for the duration of one
attribution (docs/architecture.md: canonizers are automatic, and honest).

Each canonizer registers itself beside its class with :func:`register_canonizer`; importing this package imports
every built-in canonizer module, so the registry is complete at import time. :func:`default_canonizers` picks those
whose module types the model contains.
"""

from . import _cnn, _concat, _transformers  # noqa: F401  (the vision blocks register themselves)
from ._absorbed import ABSORBED
from ._default import SEQUENCE_CANONIZERS, default_canonizers, sequence_canonizers
from ._merge import AdjacentMergeBatchNorm, ExactMergeBatchNorm, adjacent_pairs, is_plain_sequential
from ._parts import AttentionValues, StepLinear, StepSum
from ._registry import CANONIZERS, RegisteredCanonizer, canonized_types, register_canonizer

__all__ = [
    "ABSORBED",
    "CANONIZERS",
    "SEQUENCE_CANONIZERS",
    "AdjacentMergeBatchNorm",
    "AttentionValues",
    "ExactMergeBatchNorm",
    "RegisteredCanonizer",
    "StepLinear",
    "StepSum",
    "adjacent_pairs",
    "canonized_types",
    "default_canonizers",
    "is_plain_sequential",
    "register_canonizer",
    "sequence_canonizers",
]
