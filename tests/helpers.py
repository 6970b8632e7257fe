"""Small utilities for the tests that start real processes."""

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something other than None (or False); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout} s")
        time.sleep(interval)


def randomise_batch_norm(model):
    """BatchNorm statistics and affine parameters away from identity, so merging them into the convolutions
    matters."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return model


def zero_biases(model):
    """Every bias (and BatchNorm mean) zero: the network becomes positively homogeneous, so LRP conserves."""
    from torch import nn

    for module in model.modules():
        if getattr(module, "bias", None) is not None:
            module.bias.data.zero_()
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.zero_()
    return model


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def zoo_variants():
    """The four variants with a negligible epsilon and stabilizer, so a conserving configuration sums to 1 to
    float64 precision (epsilon and the stabilizer absorb relevance by design)."""
    from explainers import LRPEpsilonAlpha2Beta1, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon

    tiny = {"epsilon": 1e-12, "stabilizer": 1e-12, "seed": "one_hot"}
    return {
        "LRPUniformEpsilon": lambda model: LRPUniformEpsilon(model, **tiny),
        "LRPEpsilonPlus": lambda model: LRPEpsilonPlus(model, **tiny),
        "LRPEpsilonGammaBox": lambda model: LRPEpsilonGammaBox(model, low=-4.0, high=4.0, **tiny),
        "LRPEpsilonAlpha2Beta1": lambda model: LRPEpsilonAlpha2Beta1(model, **tiny),
    }


def model_state(model):
    """Everything an explainer must leave as it found: parameters, buffers (bit for bit), hooks, modes."""
    return {
        "tensors": {name: value.detach().clone() for name, value in model.state_dict(keep_vars=True).items()},
        "hooks": hook_count(model),
        "training": [module.training for module in model.modules()],
        "forwards": [module.__dict__.get("forward") for module in model.modules()],
        "modules": [name for name, _ in model.named_modules()],
    }


def assert_same_state(before, after):
    assert before["modules"] == after["modules"], "modules were added or removed"
    assert before["hooks"] == after["hooks"], "hooks were left on the model"
    assert before["training"] == after["training"], "training flags changed"
    assert before["forwards"] == after["forwards"], "a forward method was left replaced"
    assert before["tensors"].keys() == after["tensors"].keys()
    for name, value in before["tensors"].items():
        assert torch_equal(value, after["tensors"][name]), f"{name} changed"


def torch_equal(a, b) -> bool:
    import torch

    return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))


def seed_totals(explainer, inputs, targets):
    """The relevance the explainer puts in at the output per sample: 1 (one-hot seed), the target logit, or its
    sign (see LRPBase)."""
    import torch

    from explainers._attributors import run_model

    forward_args, additional_args, _ = explainer._split_inputs(inputs)
    with torch.no_grad():
        output = run_model(explainer.model, forward_args, additional_args)
    logit = output.gather(1, torch.as_tensor(targets, device=output.device).long().view(-1, 1)).squeeze(1)
    if explainer.seed == "one_hot":
        return torch.ones_like(logit)
    return logit if explainer.seed == "logit" else torch.where(logit < 0, -1.0, 1.0).to(logit.dtype)


def assert_conserves(explainer, inputs, targets, *, tolerance=1e-6):
    """The input relevance (plus what the explainer reports as absorbed elsewhere, e.g. by a class token) sums
    to the seed's total per sample (1 with the one-hot seed, see :func:`seed_totals`), and it is not
    degenerate: most of it reaches the input and many inputs receive some."""
    import torch

    from explainers._conservation import relevance_sums

    relevance = explainer.attribute(inputs, targets)
    sums = relevance_sums(relevance)
    absorbed = getattr(explainer, "last_absorbed", None) or {}
    total = sums + sum(absorbed.values()) if absorbed else sums
    expected = seed_totals(explainer, inputs, targets)
    if explainer.seed == "logit":  # relative to the logit's size
        total, expected = total / expected.abs(), expected / expected.abs()
    assert torch.allclose(total, expected, atol=tolerance, rtol=0), f"sums {total.tolist()}"
    nonzero = (relevance.abs() > 1e-12).double().mean()
    assert nonzero > 0.1, f"only {nonzero:.1%} of the inputs receive relevance: a degenerate fixture"
    assert bool((relevance.flatten(1).abs().sum(1) > 1e-3).all()), "a sample with (almost) no relevance"
    return relevance


def tune_options(**flat):
    """``tune()``'s grouped options from flat keywords named as the groups' fields (``n_trials=4``,
    ``metric="irof"``, ``storage="sqlite:///..."``, ``heartbeat_interval=...``): the tests state each setting once
    and tune() receives Objective, Budget, Search, Report and Storage as a user writes them."""
    import dataclasses

    from tuner import Budget, Objective, Report, Search, Storage

    direct = {key: flat.pop(key) for key in ("study_name", "explainer_kwargs", "device") if key in flat}
    if "storage" in flat:
        flat["url"] = flat.pop("storage")
    options = {}
    for name, group in (("objective", Objective), ("budget", Budget), ("search", Search), ("report", Report)):
        fields = {f.name for f in dataclasses.fields(group)}
        given = {key: flat.pop(key) for key in list(flat) if key in fields}
        if given:
            options[name] = group(**given)
    storage_fields = {key: flat.pop(key) for key in list(flat) if key in ("url", "heartbeat_interval")}
    if storage_fields:
        options["storage"] = Storage(**storage_fields)
    if flat:
        raise TypeError(f"not an option of tune(): {', '.join(flat)}")
    return {**options, **direct}


def run_tune(explainer_cls, model, data, **flat):
    """``tune(explainer_cls, model, data, ...)`` with the options given as flat keywords (:func:`tune_options`)."""
    from tuner import tune

    return tune(explainer_cls, model, data, **tune_options(**flat))
