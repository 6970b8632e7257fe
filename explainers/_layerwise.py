"""LRPLayerwise: one LRP rule and parameter per group of layers, the groups derived from the model's structure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn
from zennit.composites import layer_map_base
from zennit.core import Composite, Hook
from zennit.rules import Epsilon, Flat, ZBox
from zennit.types import Convolution

from ._registry import register_explainer
from ._tunable import Tunables
from ._variants import (
    LOG_UNIT_INTERVAL,
    Bound,
    LRPEpsilonAlpha2Beta1,
    LRPEpsilonGammaBox,
    LRPEpsilonPlus,
    LRPUniformEpsilon,
    Stabilizer,
    _ZennitVariant,
    check_bounds,
    check_positive,
)
from .rules import ConservingAlphaBeta, ConservingZPlus, FastGamma, sequence_layer_map

GROUPS = ("input", "lower", "middle", "upper", "dense")
RULES = ("epsilon", "gamma", "alpha2beta1", "zplus")
INPUT_RULES = ("zbox", "flat", *RULES)
PARAMETRIC = ("epsilon", "gamma")  # the rules with a parameter: <group>_epsilon, <group>_gamma
RULE_WORDS = {
    "epsilon": "epsilon",
    "gamma": "gamma",
    "alpha2beta1": "alpha2-beta1",
    "zplus": "z-plus",
    "zbox": "z-box",
    "flat": "flat",
}
NamedModules = list[tuple[str, nn.Module]]


@dataclass(frozen=True)
class GroupRule:
    """The choice for one group of layers: its ``rule`` and the parameters of the parametric rules (each used
    only when its rule is chosen). Its fields are the tunables ``<group>_rule``, ``<group>_epsilon`` and
    ``<group>_gamma`` of :class:`LRPLayerwise`."""

    rule: str
    epsilon: Stabilizer = 1e-6
    gamma: float = 0.25

    def check(self, group: str) -> None:
        """Raise ValueError for a rule the group cannot take or a negative parameter."""
        choices = INPUT_RULES if group == "input" else RULES
        if self.rule not in choices:
            raise ValueError(f"{group}_rule must be one of {', '.join(choices)}; got {self.rule!r}")
        check_positive(**{f"{group}_{name}": getattr(self, name) for name in PARAMETRIC})

    def hook(self, lrp: LRPLayerwise) -> Hook:
        """A fresh zennit rule built from this choice and the explainer's bounds and stabilizer."""
        return _RULE_BUILDERS[self.rule](self, lrp)

    def words(self) -> str:
        """The rule in plain words, with its parameter: ``gamma, gamma=0.25``."""
        words = RULE_WORDS[self.rule]
        if self.rule in PARAMETRIC:
            words += f", {self.rule}={_number(getattr(self, self.rule))}"
        return words


DEFAULT_RULES = {
    "input": GroupRule("zbox"),
    "lower": GroupRule("gamma"),
    "middle": GroupRule("gamma"),
    "upper": GroupRule("gamma"),
    "dense": GroupRule("epsilon"),
}
FIELDS = tuple(field.name for field in dataclasses.fields(GroupRule))  # rule, epsilon, gamma

# the zennit rule of a choice, built from the explainer's current parameters
_RULE_BUILDERS: dict[str, Callable[[GroupRule, LRPLayerwise], Hook]] = {
    "epsilon": lambda choice, lrp: Epsilon(epsilon=choice.epsilon),
    "gamma": lambda choice, lrp: FastGamma(gamma=choice.gamma, stabilizer=lrp.stabilizer),
    "alpha2beta1": lambda choice, lrp: ConservingAlphaBeta(alpha=2, beta=1, stabilizer=lrp.stabilizer),
    "zplus": lambda choice, lrp: ConservingZPlus(stabilizer=lrp.stabilizer),
    "zbox": lambda choice, lrp: ZBox(low=lrp.low, high=lrp.high, stabilizer=lrp.stabilizer),
    "flat": lambda choice, lrp: Flat(stabilizer=lrp.stabilizer),
}


def layer_groups(model: nn.Module) -> dict[str, NamedModules]:
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


@register_explainer("layerwise", default=False)
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
        input, lower, middle, upper, dense: each group's :class:`GroupRule` (or its fields as a mapping):
            ``rule`` and the ``epsilon`` and ``gamma`` of the parametric rules, each used only when its rule is
            chosen. The input layer's rule is ``zbox`` (uses ``low``/``high``), ``flat`` (relevance spread
            uniformly over the receptive field, ignoring inputs and weights), ``epsilon``, ``gamma``,
            ``alpha2beta1`` or ``zplus``; the lower, middle and upper thirds of the other convolutions and the
            dense head (every ``nn.Linear``; every one but the first in a model without convolutions) take
            ``epsilon``, ``gamma``, ``alpha2beta1`` (positive contributions count twice, negative ones once
            against) or ``zplus`` (only positive contributions). ``epsilon=0`` gives LRP-0 (gradient × input
            on ReLU networks); a large epsilon absorbs weak and contradictory relevance and gives sparser maps.
            ``gamma=0`` is LRP-0; a large gamma approaches z-plus. The dense group's epsilon is also the epsilon
            of the sequence rules (attention values, recurrent steps), as in the variants.
        stabilizer: guards the denominators of every rule other than epsilon (and of the sums, average
            pooling and residual adds).
        **options: a group's fields by their tunable names (``input_rule``, ``lower_gamma``,
            ``dense_epsilon``, ...: ``<group>_rule``, ``<group>_epsilon``, ``<group>_gamma``), which replace
            that field of the group's choice; and the options every explainer shares (:class:`LRPBase`).

    A group that is empty on ``model`` gets no rule, and its tunables are left out of :meth:`get_tunables`
    (which is therefore per model; ``TUNABLES`` is the full space).
    """

    SUPPORTED_MODULES: ClassVar[list[type]] = [Convolution, nn.Linear]
    TUNABLES = _full_tunables()
    PARAMETERS = {"low": -3.0, "high": 3.0, **DEFAULT_RULES, "stabilizer": 1e-6}
    low: Bound
    high: Bound

    def __init__(
        self,
        model: nn.Module,
        low: Bound = PARAMETERS["low"],
        high: Bound = PARAMETERS["high"],
        input: GroupRule | Mapping[str, Any] = DEFAULT_RULES["input"],
        lower: GroupRule | Mapping[str, Any] = DEFAULT_RULES["lower"],
        middle: GroupRule | Mapping[str, Any] = DEFAULT_RULES["middle"],
        upper: GroupRule | Mapping[str, Any] = DEFAULT_RULES["upper"],
        dense: GroupRule | Mapping[str, Any] = DEFAULT_RULES["dense"],
        stabilizer: Stabilizer = PARAMETERS["stabilizer"],
        **options: Any,
    ) -> None:
        # the tunables' own names (lower_gamma=0.5) set one field of their group's choice
        fields = {name: options.pop(name) for name in list(options) if name in self.TUNABLES}
        check_positive(stabilizer=stabilizer)
        check_bounds(low, high)
        self.low = low
        self.high = high
        self.input, self.lower, self.middle, self.upper, self.dense = (
            _choice(group, value, fields) for group, value in zip(GROUPS, (input, lower, middle, upper, dense))
        )
        self.stabilizer = stabilizer
        super().__init__(model, **options)

    @classmethod
    def accepted_kwargs(cls) -> frozenset[str]:
        """The parameters and each group's fields by their tunable names (``lower_gamma``)."""
        return super().accepted_kwargs() | frozenset(cls.TUNABLES)

    @property
    def rules(self) -> dict[str, GroupRule]:
        """Each group's choice, by group name."""
        return dict(zip(GROUPS, (self.input, self.lower, self.middle, self.upper, self.dense)))

    def __getattr__(self, name: str) -> Any:
        """Read a group's field by its tunable name (``explainer.lower_rule``): a view of :attr:`rules`."""
        group, _, field = name.partition("_")
        choice = self.__dict__.get(group)
        if isinstance(choice, GroupRule) and field in FIELDS:
            return getattr(choice, field)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def tunable_values(self) -> dict[str, Any]:
        """The current value of each tunable (``lower_gamma``: the gamma of the lower group's choice)."""
        flat = {
            f"{group}_{name}": value
            for group, choice in self.rules.items()
            for name, value in dataclasses.asdict(choice).items()
        }
        return {name: flat[name] for name in self.get_tunables()}

    def groups(self) -> dict[str, list[str]]:
        """The names of the modules in each layer group of this explainer's model (see :func:`layer_groups`)."""
        return {group: [name for name, _ in modules] for group, modules in layer_groups(self.model).items()}

    def get_tunables(self) -> Tunables:
        """The full space less the tunables of the groups that are empty on this model."""
        present = {group for group, modules in layer_groups(self.model).items() if modules}
        return {
            name: (kind, dict(spec)) for name, (kind, spec) in self.TUNABLES.items() if name.split("_")[0] in present
        }

    def get_conditions(self) -> dict[str, dict[str, list[Any]]]:
        """Each rule parameter exists only when its group uses that rule: ``{"lower_gamma": {"lower_rule":
        ["gamma"]}, ...}``, for the groups present on this model."""
        tunables = self.get_tunables()
        return {
            name: {f"{name.split('_')[0]}_rule": [name.split("_")[1]]}
            for name in tunables
            if name.split("_")[1] in PARAMETRIC
        }

    def rule(self, group: str) -> Hook:
        """A fresh zennit rule for ``group`` built from the current parameters."""
        return self.rules[group].hook(self)

    def sequence_layer_map(self) -> list:
        """The sequence rules (attention values, recurrent steps) with ``dense_epsilon``, as the variants'."""
        return sequence_layer_map(self.dense.epsilon, self.stabilizer)

    def build_composite(self, model: nn.Module) -> Composite:
        """Sequence rules and zennit's base map (activations, sums, pooling, BatchNorm) by type, then each
        convolution and dense layer its group's rule by module identity."""
        by_module: dict[int, Hook] = {}
        for group, modules in layer_groups(model).items():
            rule = self.rule(group)
            by_module.update({id(module): rule for _, module in modules})
        type_map = self.sequence_layer_map() + layer_map_base(self.stabilizer)
        # dense layers the sequence canonizers create (attention values, recurrent input maps) take the
        # dense head's rule, as in the variants
        created = self.rule("dense")

        def module_map(ctx: dict, name: str, module: nn.Module) -> Hook | None:
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
                group, f"{group} convolutions ({count})"
            )
            lines.append(f"{label}: {self.rules[group].words()}")
        return "\n".join(lines)

    @classmethod
    def variant_configurations(cls) -> dict[str, dict[str, Any]]:
        """Variant class name -> the LRPLayerwise keyword arguments that reproduce that variant with its
        default parameters (its ``PARAMETERS``), for LRPUniformEpsilon, LRPEpsilonGammaBox,
        LRPEpsilonPlus and LRPEpsilonAlpha2Beta1.

        Each holds every group's rule and the parameter of that rule only (what an Optuna trial of
        :meth:`get_tunables` holds), not ``low``, ``high`` or ``stabilizer``: those are shared with the
        variant's constructor, so ``LRPLayerwise(model, **config)`` equals the variant's default on a model
        with convolutions when both get the same bounds and stabilizer. A class method: the configuration does
        not depend on the model (the tuner keeps the tunables of the groups the model has).
        """
        uniform = LRPUniformEpsilon.PARAMETERS
        box = LRPEpsilonGammaBox.PARAMETERS
        convolutions = {
            LRPUniformEpsilon: ("epsilon", "epsilon", {"epsilon": uniform["epsilon"]}, uniform["epsilon"]),
            LRPEpsilonGammaBox: ("zbox", "gamma", {"gamma": box["gamma"]}, box["epsilon"]),
            LRPEpsilonPlus: ("zplus", "zplus", {}, LRPEpsilonPlus.PARAMETERS["epsilon"]),
            LRPEpsilonAlpha2Beta1: ("alpha2beta1", "alpha2beta1", {}, LRPEpsilonAlpha2Beta1.PARAMETERS["epsilon"]),
        }
        configurations = {}
        for variant, (input_rule, conv_rule, conv_values, dense_epsilon) in convolutions.items():
            config: dict[str, Any] = {"input_rule": input_rule}
            if input_rule in PARAMETRIC:
                config["input_" + input_rule] = conv_values[input_rule]
            for group in ("lower", "middle", "upper"):
                config[f"{group}_rule"] = conv_rule
                if conv_rule in PARAMETRIC:
                    config[f"{group}_{conv_rule}"] = conv_values[conv_rule]
            config.update(dense_rule="epsilon", dense_epsilon=dense_epsilon)
            configurations[variant.__name__] = config
        return configurations


def _choice(group: str, value: GroupRule | Mapping[str, Any], fields: Mapping[str, Any]) -> GroupRule:
    """The group's choice: ``value`` (a GroupRule, or its fields as a mapping from a saved configuration) with
    the fields given by their tunable names (``lower_gamma``) replaced; checked."""
    choice = value if isinstance(value, GroupRule) else GroupRule(**value)
    replaced = {name: fields[f"{group}_{name}"] for name in FIELDS if f"{group}_{name}" in fields}
    choice = dataclasses.replace(choice, **replaced)
    choice.check(group)
    return choice


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else repr(value)
