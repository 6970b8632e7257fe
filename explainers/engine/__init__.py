"""The attribution engine: every LRP rule as the backward of its layer, so an attribution costs about one gradient;
zennit's hooks (the reference) stay for the layers it does not cover."""

from ._allocator import keep_freed_memory
from ._composite import EngineComposite, engine_enabled, zennit_hooks
from ._many import attribute_many

__all__ = ["EngineComposite", "attribute_many", "engine_enabled", "keep_freed_memory", "zennit_hooks"]
