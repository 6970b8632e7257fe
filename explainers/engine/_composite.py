"""The engine as a zennit composite: the reference composite's canonizers and layer map decide every layer's rule;
a layer the engine has a rule for gets it as its backward, any other keeps the reference's zennit hook."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections import Counter
from collections.abc import Iterator

from torch import nn
from zennit.core import Composite, Hook

from ._function import EngineHandle, RuleSlot, install
from ._rules import EngineRule, engine_rule, has_rule

#: the setting ``LRP_TUNER_ENGINE=off`` turns the engine off for a whole process (a study through zennit's hooks)
_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lrp_tuner_engine", default=os.environ.get("LRP_TUNER_ENGINE", "on").lower() not in ("off", "0", "false")
)


@contextlib.contextmanager
def zennit_hooks() -> Iterator[None]:
    """Attribute through zennit's hooks (the reference path) instead of the engine inside this block."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def engine_enabled() -> bool:
    """Whether attributions use the engine here (they do unless inside :func:`zennit_hooks` or the process was
    started with ``LRP_TUNER_ENGINE=off``)."""
    return _ENABLED.get()


class _EngineTemplate:
    """What zennit's ``Composite.register`` takes from a layer map: ``copy`` and ``register(module)``."""

    def __init__(self, rule: EngineRule, composite: EngineComposite) -> None:
        self.rule, self.composite = rule, composite

    def copy(self) -> _EngineTemplate:
        return self

    def register(self, module: nn.Module) -> EngineHandle:
        slot = RuleSlot(self.rule, self.rule.layer_forward(module, module.forward))
        self.composite.slots[module] = slot
        return install(module, slot)


class EngineComposite(Composite):
    """``reference`` (a zennit composite) with each layer's rule computed as that layer's backward where the engine
    covers it. :attr:`hooked` counts, by layer type, the layers that kept a zennit hook at the last registration."""

    def __init__(self, reference: Composite) -> None:
        self.reference = reference
        self.hooked: Counter[str] = Counter()
        self.slots: dict[nn.Module, RuleSlot] = {}
        super().__init__(module_map=self._module_map, canonizers=reference.canonizers)

    def register(self, module: nn.Module) -> None:
        self.hooked, self.slots = Counter(), {}
        super().register(module)

    def _module_map(self, ctx: dict, name: str, module: nn.Module) -> Hook | _EngineTemplate | None:
        template = self.reference.module_map(ctx, name, module)
        if not has_rule(template):
            return template
        rule = engine_rule(template, module, module.forward)
        if rule is None:
            self.hooked[type(module).__name__] += 1
            return template
        return _EngineTemplate(rule, self)
