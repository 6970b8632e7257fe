"""One registry of named things (explainers, metrics, presets, samplers, pruners, canonizers), written once: register
beside the definition, look up with a one-line did-you-mean error, plug in through entry points."""

from __future__ import annotations

from ._named import Registry, first_line

__all__ = ["Registry", "first_line"]
