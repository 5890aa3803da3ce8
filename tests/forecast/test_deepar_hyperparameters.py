"""DeepAR hyperparameters are checked as the built-in algorithm checks them."""

from __future__ import annotations

import pytest

from infra.local.sagemaker.deepar import AlgorithmError, validate_hyperparameters

BASE = {"time_freq": "H", "context_length": "72", "prediction_length": "24", "epochs": "5"}


def test_defaults_and_types() -> None:
    config = validate_hyperparameters(BASE)
    assert (config.context_length, config.prediction_length, config.epochs) == (72, 24, 5)
    assert config.likelihood == "student-T" and config.num_cells == 40 and config.mini_batch_size == 128
    assert config.cardinality == "auto" and config.num_dynamic_feat == "auto"
    assert config.pandas_freq == "h"  # SageMaker's "H" is pandas' "h"


def test_full_set_of_builtin_names() -> None:
    config = validate_hyperparameters(
        {
            **BASE, "time_freq": "5min", "likelihood": "negative-binomial", "num_cells": "64", "num_layers": "3",
            "mini_batch_size": "32", "learning_rate": "0.005", "dropout_rate": "0.2", "early_stopping_patience": "3",
            "cardinality": "[3, 7]", "embedding_dimension": "4", "num_dynamic_feat": "ignore", "num_eval_samples": "50",
            "test_quantiles": "[0.1, 0.5, 0.9]", "_seed": "7", "_tuning_objective_metric": "test:RMSE",
        }
    )
    assert config.pandas_freq == "5min" and config.cardinality == [3, 7] and config.test_quantiles == (0.1, 0.5, 0.9)
    assert config.seed == 7 and config.learning_rate == 0.005 and config.early_stopping_patience == 3


def test_starting_values_and_tuning_ranges_are_valid_for_the_builtin() -> None:
    """Preprocess's starting values and every range bound are values the built-in DeepAR accepts."""
    from processing.data_profile import BASE_DEFAULTS, LONG_HISTORY_EPOCHS, SHORT_HISTORY_EPOCHS

    for epochs in (SHORT_HISTORY_EPOCHS, LONG_HISTORY_EPOCHS):
        start = {**BASE_DEFAULTS, "context_length": 168, "embedding_dimension": 4, "likelihood": "negative-binomial",
                 "epochs": epochs}
        config = validate_hyperparameters({**BASE, **{k: str(v) for k, v in start.items()}})
        assert (config.context_length, config.epochs, config.likelihood) == (168, epochs, "negative-binomial")
        check_ranges(start)


def check_ranges(start: dict) -> None:
    from processing.data_profile import tuning_ranges

    for name, bounds in tuning_ranges(start).items():
        for bound in ("MinValue", "MaxValue"):
            value = bounds[bound]
            typed = validate_hyperparameters({**BASE, name: str(value)})
            assert getattr(typed, name) == pytest.approx(value), (name, bound)
        assert bounds["MinValue"] <= start[name] <= bounds["MaxValue"]


BAD = [
    ({"num_cell": "40"}, "unknown hyperparameter 'num_cell'"),
    ({"epochs": None}, "epochs=None: not an integer"),
    ({"epochs": "ten"}, "epochs='ten': not an integer"),
    ({"epochs": "0"}, "epochs='0': out of range"),
    ({"context_length": "-3"}, "context_length='-3': out of range"),
    ({"prediction_length": "2.5"}, "prediction_length='2.5': not an integer"),
    ({"time_freq": "hourly"}, "time_freq='hourly'"),
    ({"time_freq": "0H"}, "time_freq='0H'"),
    ({"likelihood": "poisson"}, "likelihood='poisson': expected one of"),
    ({"likelihood": "deterministic-L1"}, "not supported by the local GluonTS stand-in"),
    ({"learning_rate": "0"}, "learning_rate='0': out of range"),
    ({"learning_rate": "fast"}, "learning_rate='fast': not a number"),
    ({"dropout_rate": "1"}, "dropout_rate='1': out of range"),
    ({"mini_batch_size": "0"}, "mini_batch_size='0'"),
    ({"cardinality": "[3, 0]"}, "cardinality[1]=0: out of range"),
    ({"cardinality": "three"}, "cardinality='three': expected a JSON list"),
    ({"num_dynamic_feat": "some"}, "num_dynamic_feat='some': not an integer"),
    ({"test_quantiles": "[0.5, 1.5]"}, "test_quantiles[1]=1.5: out of range"),
    ({"test_quantiles": "0.5"}, "test_quantiles='0.5': expected a non-empty list"),
    ({"_seed": "-1"}, "_seed='-1': out of range"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_hyperparameters_are_named(override: dict, message: str) -> None:
    with pytest.raises(AlgorithmError) as info:
        validate_hyperparameters({**BASE, **override})
    assert message in str(info.value)


@pytest.mark.parametrize("missing", ["time_freq", "context_length", "prediction_length", "epochs"])
def test_required_hyperparameters(missing: str) -> None:
    hp = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(AlgorithmError, match=f"missing required hyperparameter '{missing}'"):
        validate_hyperparameters(hp)
