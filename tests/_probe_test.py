import math
import optuna
from optuna.trial import TrialState
from tests.test_tune import *

def test_probe(digits):
    model, inputs, labels = digits
    result = tune(_UnstableEpsilon, model, (inputs, labels), n_trials=5, sampler="random", **FAST)
    for t in result.study.trials: print(t.number, t.state, t.params, t.value, t.user_attrs.get("fail_reason"))
    a = _UnstableEpsilon(model, epsilon=1e-5)
    print(a.attribute(inputs[:2], labels[:2]).flatten()[:10])
