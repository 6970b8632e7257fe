"""Run a user's model in evaluation mode and hand it back exactly as it came, also when an error interrupts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

#: the hook dictionaries of a module that attribution (zennit's rules, layer capture) may add to
HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; afterwards every submodule's training flag, every parameter's
    ``requires_grad``, the parameter and buffer objects and the hooks are those it came with.

    Explainers and ``tune()`` run under it so that ``m.train(); LRPEpsilonGammaBox(m).attribute(...)`` leaves
    ``m.training`` True: a user's model is theirs, and attribution borrows it only while it runs.
    """
    modules = list(model.modules())
    training = [module.training for module in modules]
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    tensors = [(module, dict(module._parameters), dict(module._buffers)) for module in modules]
    hooks = [(module, {name: dict(getattr(module, name, {})) for name in HOOK_DICTS}) for module in modules]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in zip(modules, training):
            module.training = flag
        for parameter, flag in requires_grad:
            parameter.requires_grad_(flag)
        for module, parameters, buffers in tensors:
            _restore(module._parameters, parameters)
            _restore(module._buffers, buffers)
        for module, saved in hooks:
            for name, entries in saved.items():
                if hasattr(module, name):
                    _restore(getattr(module, name), entries)


def _restore(current: dict, saved: dict) -> None:
    """``current`` (a module's own dict, kept as the same object) holds exactly ``saved`` again."""
    if current.keys() != saved.keys() or any(current[key] is not value for key, value in saved.items()):
        current.clear()
        current.update(saved)
