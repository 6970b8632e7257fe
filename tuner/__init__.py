"""The study driver: explainers' search spaces -> Optuna trials -> metric scores; ``tune()``."""

from explainers import DEFAULT_EXPLAINERS as ALL_VARIANTS

from ._options import Budget, Objective, Report, Search, Storage
from ._tune import tune
from .evidence._result import TuneResult
from .search._objective import TrialFailed
from .search._space import SearchSpace
from .search._study import StudyMismatchError
from .storage._open import StorageError, mask_url

__all__ = [
    "ALL_VARIANTS",
    "Budget",
    "Objective",
    "Report",
    "Search",
    "Storage",
    "SearchSpace",
    "StorageError",
    "StudyMismatchError",
    "TrialFailed",
    "TuneResult",
    "mask_url",
    "tune",
]
