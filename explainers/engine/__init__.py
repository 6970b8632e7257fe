"""The attribution engine: every LRP rule as the backward of its layer, so an attribution costs about one gradient;
zennit's hooks (the reference) stay for the layers it does not cover."""

from ._composite import EngineComposite, engine_enabled, zennit_hooks

__all__ = ["EngineComposite", "engine_enabled", "zennit_hooks"]
