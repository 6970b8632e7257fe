"""The command line: ``python -m tuner run|dashboard|best`` (installed as ``lrp-tuner``)."""

from ._argv import command_line
from ._main import main

__all__ = ["command_line", "main"]
