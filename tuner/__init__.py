"""The study driver: explainers' search spaces -> Optuna trials -> metric scores; ``tune()``."""
from ._objective import TrialFailed
from ._result import TuneResult
from ._space import ALL_VARIANTS, SearchSpace, variant_by_name
from ._storage import StorageError, mask_url
from ._tune import StudyMismatchError, tune

__all__ = ["tune", "TuneResult", "SearchSpace", "ALL_VARIANTS", "variant_by_name", "TrialFailed",
           "StorageError", "StudyMismatchError", "mask_url"]
