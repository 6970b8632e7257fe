"""Fixtures shared by several test modules."""
import pytest


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory):
    """Train the embedded digits model once per session into a temporary cache folder (LRP_TUNER_CACHE,
    inherited by subprocesses); yield (model, report, cache folder)."""
    from studies import _digits
    cache = tmp_path_factory.mktemp("lrp-tuner-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("LRP_TUNER_CACHE", str(cache))
    model, report = _digits.cached_digits_model()
    print(f"digits training: {report['train_seconds']:.1f} s, held-out accuracy {report['accuracy']:.4f}")
    yield model, report, cache
    patch.undo()
