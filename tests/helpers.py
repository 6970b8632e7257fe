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
