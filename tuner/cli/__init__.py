"""The command line: ``python -m tuner run|dashboard|best`` (installed as ``lrp-tuner``)."""

from ._main import main

__all__ = ["main"]
