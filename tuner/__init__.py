"""The study driver: explainers' search spaces -> Optuna trials -> metric scores; ``tune()``."""

from explainers import DEFAULT_EXPLAINERS as ALL_VARIANTS

from ._objective import TrialFailed
from ._result import TuneResult
from ._space import SearchSpace
from ._storage import StorageError, mask_url
from ._study import StudyMismatchError
from ._tune import tune

__all__ = [
    "ALL_VARIANTS",
    "SearchSpace",
    "StorageError",
    "StudyMismatchError",
    "TrialFailed",
    "TuneResult",
    "mask_url",
    "tune",
]
