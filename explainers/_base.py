"""LRPBase: everything an LRP explainer does once, so that a variant only declares its composite."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from zennit.canonizers import Canonizer
from zennit.core import Composite

from ._attributors import InputGradient, LayerGradient, as_tuple, run_model
from ._checks import check_finite, check_finite_parameters, jsonable
from ._guard import check_supported
from ._model_state import evaluation_mode
from ._tunable import Tunable, Tunables
from .canonizers import ABSORBED, default_canonizers
from .engine import EngineComposite, attribute_many, engine_enabled

Inputs = torch.Tensor | tuple[torch.Tensor, ...]
ForwardArgumentExtractor = Callable[[Inputs], Inputs]
TargetLayer = str | nn.Module
TargetLayerOrListOfTargetLayers = TargetLayer | Sequence[TargetLayer]


#: the relevance put in at the target output: its logit's sign, the logit, or 1 (see LRPBase)
SEEDS: tuple[str, ...] = ("sign", "logit", "one_hot")


class LRPBase:
    """Layer-wise relevance propagation :cite:p:`bach2015pixel` with a zennit composite.

    Relevance starts at the target output, scaled by ``seed``: ``"sign"`` (the default) puts in the sign of the
    target's logit, ``"logit"`` the logit itself (the LRP convention: LRP-0 then equals gradient×input), and
    ``"one_hot"`` a 1 whatever the logit. With a conserving configuration and every bias zero, each sample's
    input relevance sums to what was put in: ±1, the logit, or 1. With biases, part of it is absorbed by the
    biases and the epsilon/stabilizer terms. ``"one_hot"`` inverts the map of a sample whose target logit is
    negative (relevance ∝ gradient×input / logit), so the default never uses it. Explainers are values:
    :meth:`copy` and :meth:`set_kwargs` return new explainers and leave this one unchanged.

    Reference: Bach S., Binder A., Montavon G., Klauschen F., Müller K.-R., and Samek W. On pixel-wise
    explanations for non-linear classifier decisions by layer-wise relevance propagation. PLoS ONE, 2015.
    """

    EXPLANATION_TYPE = "attribution"
    SUPPORTED_MODULES: ClassVar[list[type]] = []
    TUNABLES: ClassVar[Tunables] = {}
    #: the constructor's own parameters with their defaults, in its order: the one declaration that
    #: :meth:`parameters`, :meth:`set_kwargs`, the saved configuration and the search space read (the shared
    #: options, :data:`COMMON_OPTIONS`, follow them; tests/test_declarations.py compares both with the constructor)
    PARAMETERS: ClassVar[dict[str, Any]] = {"zennit_composite": None}

    def __init__(
        self,
        model: nn.Module,
        zennit_composite: Composite | None = None,
        *,
        zennit_canonizers: list[Canonizer] | None = None,
        forward_arg_extractor: ForwardArgumentExtractor | None = None,
        additional_forward_arg_extractor: ForwardArgumentExtractor | None = None,
        layer: TargetLayerOrListOfTargetLayers | None = None,
        n_classes: int | None = None,
        allow_unsupported: bool = False,
        seed: str = "sign",
    ) -> None:
        """The options every explainer shares are the keyword-only arguments here (:data:`COMMON_OPTIONS`);
        a variant takes its own parameters (its ``PARAMETERS``), then these by name."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model  # left in the mode it came in; attribution runs it in eval mode (evaluation_mode)
        self._zennit_composite = zennit_composite
        self.zennit_canonizers = zennit_canonizers
        self.forward_arg_extractor = forward_arg_extractor
        self.additional_forward_arg_extractor = additional_forward_arg_extractor
        self.layer = layer
        self._resolve_layers()  # an unknown layer name fails here, not at the first attribution
        self.n_classes = n_classes
        self._n_classes_guessed = False
        self._n_classes_checked = False
        self.allow_unsupported = allow_unsupported
        if seed not in SEEDS:
            raise ValueError(f"seed must be one of {', '.join(map(repr, SEEDS))}, got {seed!r}")
        self.seed = seed
        #: relevance per sample absorbed by model constants in the last attribution (see ABSORBED); {} if none
        self.last_absorbed: dict[str, torch.Tensor] = {}
        self._finish_init()

    def _finish_init(self) -> None:
        """The checks that need the model and the class: finite parameters, supported modules, a first guess of
        n_classes."""
        check_finite_parameters(self)
        self._check_supported_modules()
        if self.n_classes is None:
            # a guess from the model's structure, confirmed by one forward pass at the first attribution
            self.n_classes = _last_linear_out_features(self.model)
            self._n_classes_guessed = self.n_classes is not None

    # -- the declaration a variant overrides -------------------------------------------------------------
    def build_composite(self, model: nn.Module) -> Composite:
        """The zennit composite for ``model`` built from the current parameters."""
        return self._zennit_composite

    @property
    def zennit_composite(self) -> Composite:
        """A composite built from the current parameters (never cached, so parameter changes take effect)."""
        return self.build_composite(self.model)

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (or buffers); CPU for a model with neither."""
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    def get_tunables(self) -> Tunables:
        """The search space: parameter name -> (type, keyword arguments of Optuna's ``suggest_*``)."""
        return {name: (kind, dict(kwargs)) for name, (kind, kwargs) in self.TUNABLES.items()}

    def get_conditions(self) -> dict[str, dict[str, list[Any]]]:
        """Conditional tunables: name -> {earlier tunable: values for which this one exists}; none here."""
        return {}

    def tunables(self) -> dict[str, Tunable]:
        """The search space as :class:`Tunable` values (name, range or choices, condition), in the order of
        :meth:`get_tunables`: the one object the tuner reads a parameter's name, range and condition from."""
        conditions = self.get_conditions()
        return {
            name: Tunable.from_spec(name, kind, spec, conditions.get(name))
            for name, (kind, spec) in self.get_tunables().items()
        }

    def tunable_values(self) -> dict[str, Any]:
        """The current value of each tunable, by its name in :meth:`get_tunables`."""
        parameters = self.parameters()
        return {name: parameters[name] for name in self.get_tunables()}

    def canonizers(self, model: nn.Module) -> list[Canonizer]:
        """The automatic canonizers for ``model`` followed by the user's ``zennit_canonizers``."""
        return default_canonizers(model) + list(self.zennit_canonizers or [])

    def describe(self) -> str:
        """The configuration in plain words where the parameters alone do not say it; empty here."""
        return ""

    @classmethod
    def variant_configurations(cls) -> dict[str, dict[str, Any]]:
        """Configurations of this class that reproduce other explainers (label -> keyword arguments of
        :meth:`set_kwargs`); a study starts from them besides the default. None here."""
        return {}

    # -- values ----------------------------------------------------------------------------------------
    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """The constructor's arguments by name: the class's own, then :data:`COMMON_OPTIONS`."""
        return ("model", *cls.PARAMETERS, *(name for name in COMMON_OPTIONS if name not in cls.PARAMETERS))

    @classmethod
    def accepted_kwargs(cls) -> frozenset[str]:
        """Every keyword the constructor and :meth:`set_kwargs` accept: here the parameters; a class whose
        tunables set parts of a parameter (LRPLayerwise) adds their names."""
        return frozenset(cls.parameter_names())

    def parameters(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this explainer."""
        return {name: getattr(self, name) for name in self.parameter_names()}

    def settings(self) -> dict[str, Any]:
        """The parameters as JSON-serialisable values, without the model (as :meth:`Metric.settings`): what
        a study records beside each trial."""
        return {name: jsonable(value) for name, value in self.parameters().items() if name != "model"}

    def copy(self) -> LRPBase:
        """A new explainer with the same parameters."""
        return self.set_kwargs()

    def set_kwargs(self, **kwargs: Any) -> LRPBase:
        """A new explainer with ``kwargs`` replacing the current parameters; this one is unchanged."""
        parameters = self.parameters()
        if self._n_classes_guessed:
            parameters["n_classes"] = None
        unknown = sorted(set(kwargs) - self.accepted_kwargs())
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.set_kwargs() got unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"valid parameters are: {', '.join(dict.fromkeys([*parameters, *self.TUNABLES]))}"
            )
        explainer = type(self)(**{**parameters, **kwargs})
        # the same model and classes: the new explainer need not check them with a forward pass again
        explainer._n_classes_checked = (
            self._n_classes_checked and explainer.model is self.model and explainer.n_classes == self.n_classes
        )
        return explainer

    def __repr__(self) -> str:
        shown = []
        for name, value in self.parameters().items():
            text = type(value).__name__ if name == "model" else repr(value)
            if isinstance(value, torch.Tensor) and value.numel() > 1:
                text = f"tensor({value.flatten().tolist()})"
            shown.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- attribution -----------------------------------------------------------------------------------
    def explainer(self, model: nn.Module, additional_args: Sequence = ()) -> InputGradient | LayerGradient:
        """The zennit attributor: a Gradient, or a layer-gradient attributor when ``layer`` is set."""
        composite = self.build_composite(model)
        if composite is not None and engine_enabled():
            composite = EngineComposite(composite)
        if self.layer is None:
            return InputGradient(model, composite, additional_args)
        return LayerGradient(model, self._resolve_layers(model), composite, additional_args)

    def attribute(self, inputs: Inputs, targets: torch.Tensor | int | Sequence[int]) -> Inputs:
        """Relevance of ``inputs`` (or of the ``layer`` outputs) for the ``targets`` classes.

        Returns a tensor shaped like the inputs, or a tuple for tuple inputs or a list of layers.
        Raises ValueError for targets of the wrong length or out of range and for inputs the model
        rejects (before any attribution work), UnsupportedModelError for a model part no rule or canonizer
        covers (unless ``allow_unsupported``), and NonFiniteAttributionError when the result holds NaN/Inf.
        Relevance absorbed by model constants (a ViT's class token) is in :attr:`last_absorbed` afterwards.
        """
        if not self.allow_unsupported:
            check_supported(self.model)
        forward_args, additional_args, several_inputs = self._split_inputs(inputs)
        with evaluation_mode(self.model):  # the model comes back in its mode, with its hooks, also on error
            if not self._n_classes_checked:
                self._infer_n_classes(forward_args, additional_args)
            targets = self._check_targets(targets, forward_args[0].shape[0])
            attributor = self.explainer(self.model, additional_args)
            self.last_absorbed = {}
            absorbed = ABSORBED.set(self.last_absorbed)
            try:
                with torch.enable_grad():
                    _, relevance = attributor(forward_args, attr_output=lambda output: self._seed(targets, output))
            finally:
                ABSORBED.reset(absorbed)
        relevance = tuple(r.detach() for r in relevance)
        check_finite(relevance, self)
        several = several_inputs if self.layer is None else isinstance(self.layer, (list, tuple))
        return relevance if several else relevance[0]

    def shares_forward(self) -> bool:
        """Whether ``attribute_many`` may compute this explainer's relevance from a forward pass shared with other
        configurations: relevance at the input, and ``attribute`` not overridden (a subclass's own is called)."""
        return self.layer is None and type(self).attribute is LRPBase.attribute

    def attribute_many(
        self, configurations: Sequence[dict[str, Any]], inputs: Inputs, targets: torch.Tensor | int | Sequence[int]
    ) -> list[Inputs]:
        """``[self.set_kwargs(**c).attribute(inputs, targets) for c in configurations]``, from one forward pass that
        every configuration's backward shares where the engine covers the model (explainers.engine.attribute_many)."""
        return attribute_many([self.set_kwargs(**configuration) for configuration in configurations], inputs, targets)

    def check_inputs(self, inputs: Inputs) -> None:
        """Run the model once on the first sample of ``inputs``: raises ModelInputError if it rejects them,
        and learns ``n_classes``. Explainers made from this one by set_kwargs/copy skip the check."""
        forward_args, additional_args, _ = self._split_inputs(inputs)
        with evaluation_mode(self.model):
            self._infer_n_classes(forward_args, additional_args)

    # -- helpers ---------------------------------------------------------------------------------------
    def _split_inputs(self, inputs: Inputs) -> tuple[tuple[torch.Tensor, ...], tuple, bool]:
        """The tensors that receive relevance, the extra forward arguments (on the model's device), and
        whether the former are several (so the relevance is returned as a tuple)."""
        picked = self.forward_arg_extractor(inputs) if self.forward_arg_extractor else inputs
        forward_args = _to_device(as_tuple(picked), self.device)
        if not forward_args or not all(torch.is_tensor(x) for x in forward_args):
            raise TypeError("inputs must be a tensor or a tuple of tensors (the model's positional arguments)")
        if self.layer is None:
            for x in forward_args:
                if not x.is_floating_point():
                    raise TypeError(
                        f"inputs of dtype {x.dtype} cannot receive relevance; pass layer=<the embedding module> "
                        "to attribute at the embedding output of a token model"
                    )
        extra = ()
        if self.additional_forward_arg_extractor is not None:
            extra = _to_device(as_tuple(self.additional_forward_arg_extractor(inputs)), self.device)
        return forward_args, extra, isinstance(picked, (tuple, list))

    def _infer_n_classes(self, forward_args: tuple, additional_args: tuple) -> None:
        """One forward pass of the first sample: checks the inputs and learns the number of classes."""
        first = tuple(x[:1] for x in forward_args)
        extra = tuple(
            x[:1] if torch.is_tensor(x) and x.ndim and x.shape[0] == forward_args[0].shape[0] else x
            for x in additional_args
        )
        with torch.no_grad():
            n_outputs = run_model(self.model, first, extra).shape[1]
        if self.n_classes is not None and self.n_classes != n_outputs and not self._n_classes_guessed:
            raise ValueError(f"n_classes={self.n_classes} but the model returns {n_outputs} classes")
        self.n_classes = n_outputs
        self._n_classes_guessed = False
        self._n_classes_checked = True

    def _seed(self, targets: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """The relevance put in at the output (see ``seed``); checks the targets against the output's batch
        size."""
        if targets.ndim == 0:
            targets = targets.expand(output.shape[0])
        if targets.shape[0] != output.shape[0]:
            raise ValueError(
                f"targets must hold one class index per sample: expected shape "
                f"({output.shape[0]},), got {tuple(targets.shape)}"
            )
        assert self.n_classes is not None, "n_classes is learnt before the first attribution"
        one_hot = torch.nn.functional.one_hot(targets, self.n_classes).to(output.dtype)
        if self.seed == "one_hot":
            return one_hot
        logit = output.detach().gather(1, targets.view(-1, 1))
        if self.seed == "logit":
            return one_hot * logit
        return one_hot * torch.where(logit < 0, -1.0, 1.0).to(output.dtype)

    def _check_targets(self, targets, batch_size: int) -> torch.Tensor:
        targets = torch.as_tensor(targets, device=self.device)
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
        targets = targets.long()
        if targets.ndim > 1 or (targets.ndim == 1 and targets.shape[0] != batch_size and not self._time_major()):
            raise ValueError(
                f"targets must hold one class index per sample: expected shape ({batch_size},), "
                f"got {tuple(targets.shape)}"
            )
        assert self.n_classes is not None, "n_classes is learnt before the first attribution"
        bad = (targets < 0) | (targets >= self.n_classes)
        if bad.any():
            raise ValueError(
                f"targets {targets[bad].tolist()} are out of range for a model with {self.n_classes} classes "
                f"(valid: 0..{self.n_classes - 1})"
            )
        return targets

    def _time_major(self) -> bool:
        """Whether the model has recurrent layers with the batch in dimension 1 (batch_first=False)."""
        return any(isinstance(m, nn.RNNBase) and not m.batch_first for m in self.model.modules())

    def _check_supported_modules(self) -> None:
        if not self.SUPPORTED_MODULES:
            return
        if not any(isinstance(module, tuple(self.SUPPORTED_MODULES)) for module in self.model.modules()):
            needed = ", ".join(kind.__name__ for kind in self.SUPPORTED_MODULES)
            raise ValueError(
                f"{type(self).__name__} needs a model with at least one of these modules: {needed}; "
                f"{type(self.model).__name__} has none. Choose another explainer (LRPUniformEpsilon supports most)."
            )

    def _resolve_layers(self, model: nn.Module | None = None) -> list[nn.Module]:
        model = self.model if model is None else model
        if self.layer is None:
            return []
        layers = self.layer if isinstance(self.layer, (list, tuple)) else [self.layer]
        named = dict(model.named_modules())
        resolved = []
        for layer in layers:
            if isinstance(layer, str):
                if layer not in named:
                    close = difflib.get_close_matches(layer, list(named), n=3)
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    raise ValueError(f"the model has no module named {layer!r}{hint}")
                layer = named[layer]
            elif not isinstance(layer, nn.Module) or all(layer is not m for m in named.values()):
                raise ValueError(f"layer {layer!r} is not a module of the model; pass its name or the module itself")
            resolved.append(layer)
        return resolved


def _last_linear_out_features(model: nn.Module) -> int | None:
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    return linears[-1].out_features if linears else None


def _to_device(tensors: tuple, device: torch.device) -> tuple:
    return tuple(x.to(device) if torch.is_tensor(x) else x for x in tensors)


# the options every explainer shares: LRPBase's keyword-only arguments (model and composite are positional)
COMMON_OPTIONS: tuple[str, ...] = (
    "zennit_canonizers",
    "forward_arg_extractor",
    "additional_forward_arg_extractor",
    "layer",
    "n_classes",
    "allow_unsupported",
    "seed",
)
