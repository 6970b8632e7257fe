"""The variants' constructors take the reference's parameters by name, in its order, with its defaults; options
beyond the reference come after them, keyword-only (tests/data/reference_signatures.txt holds the reference's
lines)."""

import ast
import inspect
from pathlib import Path

import pytest

import explainers

REFERENCE = Path(__file__).parent / "data" / "reference_signatures.txt"


def _reference() -> dict[str, list[tuple[str, object]]]:
    """Class name -> [(parameter, default or inspect.Parameter.empty)] from the reference's __init__ lines."""
    classes = {}
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, signature = line.split("\t")
        inner = signature[len("__init__(") : signature.rindex(") ->")]
        parameters = []
        for part in _top_level_parts(inner):
            head, _, default = part.partition(" = ")
            parameters.append((head.split(":")[0].strip(), ast.literal_eval(default) if default else inspect._empty))
        classes[name] = parameters
    return classes


def _top_level_parts(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for index, character in enumerate(text):
        depth += {"[": 1, "]": -1}.get(character, 0)
        if character == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [*parts, text[start:]]


REFERENCE_CLASSES = _reference()


def test_the_reference_file_lists_the_four_variants():
    variants = {"LRPUniformEpsilon", "LRPEpsilonGammaBox", "LRPEpsilonPlus", "LRPEpsilonAlpha2Beta1"}
    assert set(REFERENCE_CLASSES) == variants
    assert all(parameters[0] == ("model", inspect._empty) for parameters in REFERENCE_CLASSES.values())


@pytest.mark.parametrize("name", sorted(REFERENCE_CLASSES))
def test_a_variants_signature_is_the_references_then_keyword_only_options(name):
    parameters = list(inspect.signature(getattr(explainers, name).__init__).parameters.values())[1:]
    reference = REFERENCE_CLASSES[name]
    own = [(p.name, p.default) for p in parameters[: len(reference)]]
    assert own == reference
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters[: len(reference)])
    extra = parameters[len(reference) :]
    assert extra and all(p.kind is p.KEYWORD_ONLY for p in extra), extra
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)
