"""LRPLayerwise: one LRP rule and parameter per group of layers, the groups derived from the model's structure."""
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from zennit.canonizers import Canonizer
from zennit.composites import layer_map_base
from zennit.core import Composite, Hook
from zennit.rules import Epsilon, Flat, Gamma, ZBox
from zennit.types import Convolution

from ._base import ForwardArgumentExtractor, TargetLayerOrListOfTargetLayers, Tunables
from ._rules import ConservingAlphaBeta, ConservingZPlus
from ._variants import (
    LOG_UNIT_INTERVAL, LRPEpsilonAlpha2Beta1, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon, Stabilizer,
    _check_positive, _ZennitVariant, check_bounds,
)

GROUPS = ("input", "lower", "middle", "upper", "dense")
RULES = ("epsilon", "gamma", "alpha2beta1", "zplus")
INPUT_RULES = ("zbox", "flat") + RULES
PARAMETRIC = ("epsilon", "gamma")  # the rules with a parameter: <group>_epsilon, <group>_gamma
RULE_WORDS = {"epsilon": "epsilon", "gamma": "gamma", "alpha2beta1": "alpha2-beta1", "zplus": "z-plus",
              "zbox": "z-box", "flat": "flat"}

# the rule of a group, built from the explainer's current parameters
_RULE_BUILDERS: Dict[str, Callable[["LRPLayerwise", str], Hook]] = {
    "epsilon": lambda lrp, group: Epsilon(epsilon=getattr(lrp, f"{group}_epsilon")),
    "gamma": lambda lrp, group: Gamma(gamma=getattr(lrp, f"{group}_gamma"), stabilizer=lrp.stabilizer),
    "alpha2beta1": lambda lrp, group: ConservingAlphaBeta(alpha=2, beta=1, stabilizer=lrp.stabilizer),
    "zplus": lambda lrp, group: ConservingZPlus(stabilizer=lrp.stabilizer),
    "zbox": lambda lrp, group: ZBox(low=lrp.low, high=lrp.high, stabilizer=lrp.stabilizer),
    "flat": lambda lrp, group: Flat(stabilizer=lrp.stabilizer),
}

_OWN_PARAMETERS = ("low", "high", *(f"{group}_rule" for group in GROUPS),
                   *(f"{group}_{rule}" for group in GROUPS for rule in PARAMETRIC), "stabilizer")
NamedModules = List[Tuple[str, nn.Module]]


def layer_groups(model: nn.Module) -> Dict[str, NamedModules]:
    """The layer groups of ``model``: group name -> its (name, module) pairs, in module registration order.

    - ``input``: the first convolution, or the first ``nn.Linear`` of a model without convolutions;
    - ``lower``, ``middle``, ``upper``: the other convolutions split into thirds (the first thirds take one
      more layer when the count is not a multiple of three: 19 convolutions give 7, 6, 6);
    - ``dense``: every ``nn.Linear`` (but the input layer of a model without convolutions).

    Order is the order in which the modules are registered (``model.named_modules()``), which equals the
    order of execution for torchvision ResNets (the shortcut convolution is registered after ``conv2`` and
    runs after it), VGGs and ``nn.Sequential`` models; no forward pass is needed, so no input shape.
    A group may be empty (a model with two convolutions has no middle or upper third).
    """
    modules = list(model.named_modules())
    convolutions = [(name, module) for name, module in modules if isinstance(module, Convolution)]
    dense = [(name, module) for name, module in modules if isinstance(module, nn.Linear)]
    if convolutions:
        first, rest = convolutions[:1], convolutions[1:]
    else:
        first, rest, dense = dense[:1], [], dense[1:]
    size, extra = divmod(len(rest), 3)
    bounds = [0]
    for third in range(3):
        bounds.append(bounds[-1] + size + (third < extra))
    lower, middle, upper = (rest[start:stop] for start, stop in zip(bounds, bounds[1:]))
    return {"input": first, "lower": lower, "middle": middle, "upper": upper, "dense": dense}


def _full_tunables() -> Tunables:
    """Per group in order: the rule's categorical, then each rule's parameter (see ``CONDITIONS``)."""
    tunables: Tunables = {}
    for group in GROUPS:
        tunables[f"{group}_rule"] = (str, {"choices": list(INPUT_RULES if group == "input" else RULES)})
        for rule in PARAMETRIC:
            tunables[f"{group}_{rule}"] = (float, dict(LOG_UNIT_INTERVAL))
    return tunables


class LRPLayerwise(_ZennitVariant):
    """LRP with a rule and parameter chosen per group of layers :cite:p:`montavon2019layer,kohlbrenner2020towards`.

    Montavon et al. (2019, "Layer-wise relevance propagation: an overview") recommend different rules for
    different depths: a box rule at the input, gamma (or alpha-beta / z-plus) on the lower convolutions,
    which makes maps robust to noise, something close to epsilon / LRP-0 on the upper layers, which keeps the
    decision faithful. Kohlbrenner et al. (2020, "Towards best practice in explaining neural network
    decisions with LRP") measure that such composites beat one rule everywhere. This explainer makes the
    choice searchable: the groups (input layer, lower / middle / upper thirds of the other convolutions, the
    dense head; see :func:`layer_groups`) each get a rule among ``epsilon``, ``gamma``, ``alpha2beta1``
    (AlphaBeta with alpha=2, beta=1) and ``zplus``; the input layer also ``zbox`` and ``flat``.

    The defaults equal zennit's EpsilonGammaBox (:class:`LRPEpsilonGammaBox`): z-box input, gamma=0.25 on
    the other convolutions, epsilon=1e-6 on the dense head. :meth:`variant_configurations` gives the
    parameters that reproduce each of the four variants.

    Parameters:
        model: the model to explain.
        low, high: the input bounds of the ``zbox`` input rule (floats or per-channel tensors shaped
            (1, C, 1, 1)); low must be below high everywhere.
        input_rule: the input layer's rule: ``zbox`` (uses ``low``/``high``), ``flat`` (relevance spread
            uniformly over the receptive field, ignoring inputs and weights), ``epsilon``, ``gamma``,
            ``alpha2beta1`` or ``zplus``.
        lower_rule, middle_rule, upper_rule: the rule of each third of the other convolutions: ``epsilon``,
            ``gamma``, ``alpha2beta1`` (positive contributions count twice, negative ones once against) or
            ``zplus`` (only positive contributions).
        dense_rule: the rule of every ``nn.Linear`` (of every ``nn.Linear`` but the first in a model without
            convolutions); same choices.
        <group>_epsilon (input_epsilon, lower_epsilon, middle_epsilon, upper_epsilon, dense_epsilon): the
            epsilon of the group's ``epsilon`` rule, used only when that rule is chosen. ``epsilon=0`` gives
            LRP-0 (gradient × input on ReLU networks); a large epsilon absorbs weak and contradictory
            relevance and gives sparser maps. ``dense_epsilon`` is also the epsilon of the sequence rules
            (attention values, recurrent steps), as in the variants.
        <group>_gamma (input_gamma, ..., dense_gamma): the gamma of the group's ``gamma`` rule, used only
            when that rule is chosen. ``gamma=0`` is LRP-0; a large gamma approaches z-plus.
        stabilizer: guards the denominators of every rule other than epsilon (and of the sums, average
            pooling and residual adds).
        zennit_canonizers: canonizers applied after the automatic ones.
        forward_arg_extractor, additional_forward_arg_extractor, layer, n_classes: as in :class:`LRPBase`.

    A group that is empty on ``model`` gets no rule, and its tunables are left out of :meth:`get_tunables`
    (which is therefore per model; ``TUNABLES`` is the full space).
    """

    SUPPORTED_MODULES = [Convolution, nn.Linear]
    TUNABLES = _full_tunables()

    def __init__(
        self,
        model: nn.Module,
        low: Union[float, torch.Tensor] = -3.0,
        high: Union[float, torch.Tensor] = 3.0,
        input_rule: str = "zbox",
        lower_rule: str = "gamma",
        middle_rule: str = "gamma",
        upper_rule: str = "gamma",
        dense_rule: str = "epsilon",
        input_epsilon: Stabilizer = 1e-6,
        input_gamma: float = 0.25,
        lower_epsilon: Stabilizer = 1e-6,
        lower_gamma: float = 0.25,
        middle_epsilon: Stabilizer = 1e-6,
        middle_gamma: float = 0.25,
        upper_epsilon: Stabilizer = 1e-6,
        upper_gamma: float = 0.25,
        dense_epsilon: Stabilizer = 1e-6,
        dense_gamma: float = 0.25,
        stabilizer: Stabilizer = 1e-6,
        zennit_canonizers: Optional[List[Canonizer]] = None,
        forward_arg_extractor: Optional[ForwardArgumentExtractor] = None,
        additional_forward_arg_extractor: Optional[ForwardArgumentExtractor] = None,
        layer: Optional[TargetLayerOrListOfTargetLayers] = None,
        n_classes: Optional[int] = None,
    ) -> None:
        values = dict(locals())  # the arguments by name, to check and store them in loops over the groups
        for group in GROUPS:
            choices = INPUT_RULES if group == "input" else RULES
            if values[f"{group}_rule"] not in choices:
                raise ValueError(f"{group}_rule must be one of {', '.join(choices)}; got {values[f'{group}_rule']!r}")
        _check_positive(stabilizer=stabilizer, **{f"{group}_{rule}": values[f"{group}_{rule}"]
                                                  for group in GROUPS for rule in PARAMETRIC})
        check_bounds(low, high)
        for name in _OWN_PARAMETERS:
            setattr(self, name, values[name])
        super().__init__(model, zennit_canonizers, forward_arg_extractor, additional_forward_arg_extractor,
                         layer, n_classes)

    def groups(self) -> Dict[str, List[str]]:
        """The names of the modules in each layer group of this explainer's model (see :func:`layer_groups`)."""
        return {group: [name for name, _ in modules] for group, modules in layer_groups(self.model).items()}

    def get_tunables(self) -> Tunables:
        """The full space less the tunables of the groups that are empty on this model."""
        present = {group for group, modules in layer_groups(self.model).items() if modules}
        return {name: (kind, dict(spec)) for name, (kind, spec) in self.TUNABLES.items()
                if name.split("_")[0] in present}

    def get_conditions(self) -> Dict[str, Dict[str, List[str]]]:
        """Each rule parameter exists only when its group uses that rule: ``{"lower_gamma": {"lower_rule":
        ["gamma"]}, ...}``, for the groups present on this model."""
        tunables = self.get_tunables()
        return {name: {f"{name.split('_')[0]}_rule": [name.split("_")[1]]} for name in tunables
                if name.split("_")[1] in PARAMETRIC}

    def rule(self, group: str) -> Hook:
        """A fresh zennit rule for ``group`` built from the current parameters."""
        return _RULE_BUILDERS[getattr(self, f"{group}_rule")](self, group)

    def sequence_layer_map(self) -> list:
        """The sequence rules (attention values, recurrent steps) with ``dense_epsilon``, as the variants'."""
        from ._sequence import sequence_layer_map
        return sequence_layer_map(self.dense_epsilon, self.stabilizer)

    def build_composite(self, model: nn.Module) -> Composite:
        """Sequence rules and zennit's base map (activations, sums, pooling, BatchNorm) by type, then each
        convolution and dense layer its group's rule by module identity."""
        by_module = {}
        for group, modules in layer_groups(model).items():
            rule = self.rule(group)
            by_module.update({id(module): rule for _, module in modules})
        type_map = self.sequence_layer_map() + layer_map_base(self.stabilizer)
        # dense layers the sequence canonizers create (attention values, recurrent input maps) take the
        # dense head's rule, as in the variants
        created = self.rule("dense")

        def module_map(ctx: dict, name: str, module: nn.Module) -> Optional[Hook]:
            by_type = next((hook for types, hook in type_map if isinstance(module, types)), None)
            if by_type is not None:
                return by_type
            return by_module.get(id(module), created if isinstance(module, nn.Linear) else None)

        return Composite(module_map=module_map, canonizers=self.canonizers(model))

    def describe(self) -> str:
        """The configuration in plain words, one line per non-empty group, e.g.
        ``lower convolutions (7 layers): gamma, gamma=0.25``."""
        lines = []
        for group, names in self.groups().items():
            if not names:
                continue
            count = f"{len(names)} layer{'s' if len(names) > 1 else ''}"
            label = {"input": f"input ({names[0]})", "dense": f"dense head ({count})"}.get(
                group, f"{group} convolutions ({count})")
            rule = getattr(self, f"{group}_rule")
            words = RULE_WORDS[rule]
            if rule in PARAMETRIC:
                words += f", {rule}={_number(getattr(self, f'{group}_{rule}'))}"
            lines.append(f"{label}: {words}")
        return "\n".join(lines)

    @classmethod
    def variant_configurations(cls) -> Dict[str, Dict[str, Any]]:
        """Variant class name -> the LRPLayerwise keyword arguments that reproduce that variant with its
        default parameters (read from its signature), for LRPUniformEpsilon, LRPEpsilonGammaBox,
        LRPEpsilonPlus and LRPEpsilonAlpha2Beta1.

        Each holds every group's rule and the parameter of that rule only (what an Optuna trial of
        :meth:`get_tunables` holds), not ``low``, ``high`` or ``stabilizer``: those are shared with the
        variant's constructor, so ``LRPLayerwise(model, **config)`` equals the variant's default on a model
        with convolutions when both get the same bounds and stabilizer. A class method: the configuration does
        not depend on the model (the tuner keeps the tunables of the groups the model has).
        """
        uniform = _defaults(LRPUniformEpsilon)
        box = _defaults(LRPEpsilonGammaBox)
        convolutions = {
            LRPUniformEpsilon: ("epsilon", "epsilon", {"epsilon": uniform["epsilon"]}, uniform["epsilon"]),
            LRPEpsilonGammaBox: ("zbox", "gamma", {"gamma": box["gamma"]}, box["epsilon"]),
            LRPEpsilonPlus: ("zplus", "zplus", {}, _defaults(LRPEpsilonPlus)["epsilon"]),
            LRPEpsilonAlpha2Beta1: ("alpha2beta1", "alpha2beta1", {}, _defaults(LRPEpsilonAlpha2Beta1)["epsilon"]),
        }
        configurations = {}
        for variant, (input_rule, conv_rule, conv_values, dense_epsilon) in convolutions.items():
            config: Dict[str, Any] = {"input_rule": input_rule}
            if input_rule in PARAMETRIC:
                config["input_" + input_rule] = conv_values[input_rule]
            for group in ("lower", "middle", "upper"):
                config[f"{group}_rule"] = conv_rule
                if conv_rule in PARAMETRIC:
                    config[f"{group}_{conv_rule}"] = conv_values[conv_rule]
            config.update(dense_rule="epsilon", dense_epsilon=dense_epsilon)
            configurations[variant.__name__] = config
        return configurations


def _defaults(cls: type) -> Dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else repr(value)
