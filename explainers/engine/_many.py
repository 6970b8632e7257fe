"""Several configurations of one explainer from one forward pass: the layers keep their inputs and outputs once,
and each configuration runs its own backward with its rules set in the layers' slots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._attributors import run_model
from .._checks import check_finite
from .._guard import check_supported
from .._model_state import evaluation_mode
from ..canonizers import ABSORBED
from ._composite import EngineComposite, engine_enabled
from ._rules import EngineRule, engine_rule, has_rule


def attribute_many(
    explainers: Sequence[Any], inputs: Any, targets: Any, *, failures: Literal["raise", "return"] = "raise"
) -> list[Any]:
    """What ``[e.attribute(inputs, targets) for e in explainers]`` returns, from one shared forward pass where the
    explainers are LRP explainers of one model and the engine covers every layer that has a rule; one attribution
    each otherwise (a layer left to a zennit hook, relevance at a layer, the engine turned off).

    ``failures="return"``: an explainer's exception is returned in its place, so that one configuration's failure
    (NaN relevance, an error) is its own; after a shared pass that fails, each is attributed alone."""
    if failures == "return":
        if len(explainers) > 1:
            try:
                return attribute_many(explainers, inputs, targets)
            except Exception:  # noqa: BLE001 - attributed one by one below, which tells whose failure it was
                pass
        return [_attribution_or_error(explainer, inputs, targets) for explainer in explainers]
    first = explainers[0] if explainers else None
    if (
        first is None
        or len(explainers) == 1
        or not engine_enabled()
        or any(not _shares_forward(e, first.model) for e in explainers)
    ):
        return [explainer.attribute(inputs, targets) for explainer in explainers]
    if not first.allow_unsupported:
        check_supported(first.model)
    forward_args, additional_args, several = first._split_inputs(inputs)
    with evaluation_mode(first.model):
        if not first._n_classes_checked:
            first._infer_n_classes(forward_args, additional_args)
        for explainer in explainers:
            explainer.n_classes, explainer._n_classes_checked = first.n_classes, True
        checked = first._check_targets(targets, forward_args[0].shape[0])
        composites = [EngineComposite(explainer.build_composite(first.model)) for explainer in explainers]
        relevances = _shared_forward(first.model, composites, explainers, forward_args, additional_args, checked)
    if relevances is None:
        return [explainer.attribute(inputs, targets) for explainer in explainers]
    results = []
    for explainer, relevance in zip(explainers, relevances):
        relevance = tuple(r.detach() for r in relevance)
        check_finite(relevance, explainer)
        results.append(relevance if several else relevance[0])
    return results


def _shares_forward(explainer: Any, model: nn.Module) -> bool:
    """An LRP explainer of ``model`` that may share its forward pass (``LRPBase.shares_forward``)."""
    shares = getattr(explainer, "shares_forward", None)
    return shares is not None and explainer.model is model and bool(shares())


def _attribution_or_error(explainer: Any, inputs: Any, targets: Any) -> Any:
    try:
        return explainer.attribute(inputs, targets)
    except Exception as error:  # the caller's to tell: this configuration failed
        return error


def _shared_forward(
    model: nn.Module,
    composites: list[EngineComposite],
    explainers: Sequence[Any],
    forward_args: tuple,
    additional_args: tuple,
    targets: torch.Tensor,
) -> list[tuple[torch.Tensor, ...]] | None:
    """One forward under the first composite, one backward per composite with its rules; None where a layer keeps a
    zennit hook or the composites do not cover the same layers."""
    first = composites[0]
    kinds = [type(canonizer) for canonizer in first.canonizers]
    if any([type(canonizer) for canonizer in composite.canonizers] != kinds for composite in composites[1:]):
        return None  # the forward pass runs under the first one's canonizers: every one must canonize alike
    with first.context(model), torch.enable_grad():
        if first.hooked:
            return None
        rules = []
        for composite in composites:
            layer_rules = _rules_in_slots(composite, first, model)
            if layer_rules is None:
                return None
            rules.append(layer_rules)
        inputs = tuple(x.detach().requires_grad_(x.is_floating_point()) for x in forward_args)
        output = run_model(model, inputs, additional_args)
        relevances = []
        for index, (explainer, layer_rules) in enumerate(zip(explainers, rules)):
            last = index == len(explainers) - 1
            for module, rule in layer_rules.items():
                first.slots[module].rule = rule
                first.slots[module].keep_parts = not last
            explainer.last_absorbed = {}
            absorbed = ABSORBED.set(explainer.last_absorbed)
            try:
                seed = explainer._seed(targets, output)
                relevances.append(torch.autograd.grad((output,), inputs, grad_outputs=(seed,), retain_graph=not last))
            finally:
                ABSORBED.reset(absorbed)
    return relevances


def _rules_in_slots(
    composite: EngineComposite, registered: EngineComposite, model: nn.Module
) -> dict[nn.Module, EngineRule] | None:
    """``composite``'s engine rule for each layer that ``registered`` gave a slot (the canonizers applied), or None
    where it maps another set of layers or leaves one to a zennit hook."""
    context: dict = {}
    rules: dict[nn.Module, EngineRule] = {}
    for name, module in model.named_modules():
        template = composite.reference.module_map(context, name, module)
        slot = registered.slots.get(module)
        if not has_rule(template):
            if slot is not None:
                return None
            continue
        rule = None if slot is None else engine_rule(template, module, slot.forward)
        if rule is None:
            return None
        rules[module] = rule
    return rules if len(rules) == len(registered.slots) else None
