"""GluonTS (PyTorch) DeepAR on CPU standing in for SageMaker's built-in DeepAR algorithm.

It reads what the built-in reads — string hyperparameters named as the built-in names them,
``train``/``test`` channel folders of DeepAR JSON lines — and answers what the built-in answers:
``test:RMSE``/``test:mean_wQuantileLoss``/``test:wQuantileLoss[q]`` metrics after training and
DeepAR response objects (``mean``/``quantiles``/``samples``) at inference.

Differences from the built-in, on purpose and visible:

* ``likelihood=deterministic-L1`` has no GluonTS counterpart and is refused with a clear error.
* An *epoch* is GluonTS's: ``num_batches_per_epoch`` (50) mini-batches of windows sampled from
  the training series, not one pass over the data.
* Runs are seeded (``_seed``, default 0) so the same data and hyperparameters give the same model.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: library chatter that says nothing about a DeepAR job (gluonts on import, Lightning and torch while
#: training and predicting), silenced only while this module imports gluonts, trains or predicts
LIBRARY_CHATTER: tuple[str, ...] = (
    ".*Using `json`-module for json-handling.*",
    ".*non-tuple sequence for multidimensional indexing.*",
    ".*does not have many workers.*",
    ".*defined a `validation_step` but have no `val_dataloader`.*",
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ".*GPU available but not used.*",
)


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """:data:`LIBRARY_CHATTER` ignored for the duration; the caller's warning filters come back after."""
    with warnings.catch_warnings():
        for message in LIBRARY_CHATTER:
            warnings.filterwarnings("ignore", message=message)
        yield


with _quiet_libraries():
    from gluonts.torch.distributions import NegativeBinomialOutput
    from gluonts.torch.distributions.negative_binomial import NegativeBinomial

from infra.local.sagemaker.deepar_format import InvalidRequest, parse_batch_line, validate_configuration  # noqa: E402

__all__ = [
    "AlgorithmError",
    "DeepARConfig",
    "DeepARPredictor",
    "batch_transform",
    "read_channel",
    "train",
    "validate_hyperparameters",
]

log = logging.getLogger("aircast.deepar")

MODEL_CONFIG_FILE = "aircast-deepar.json"
#: GluonTS mini-batches per epoch (the built-in has no such knob).
NUM_BATCHES_PER_EPOCH = 50
DEFAULT_TEST_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SUPPORTED_LIKELIHOODS = ("gaussian", "student-T", "negative-binomial", "beta")
BUILTIN_LIKELIHOODS = (*SUPPORTED_LIKELIHOODS, "deterministic-L1")
# Internal hyperparameters SageMaker itself may pass; accepted and (except _seed) ignored.
_INTERNAL = ("_seed", "_num_gpus", "_num_kv_servers", "_kvstore", "_tuning_objective_metric")
_REQUIRED = ("time_freq", "context_length", "prediction_length", "epochs")
_OPTIONAL = (
    "cardinality",
    "dropout_rate",
    "early_stopping_patience",
    "embedding_dimension",
    "learning_rate",
    "likelihood",
    "mini_batch_size",
    "num_cells",
    "num_dynamic_feat",
    "num_eval_samples",
    "num_layers",
    "test_quantiles",
)
_FREQ_RE = re.compile(r"^(\d*)(min|H|D|W|M|Y)$")
# SageMaker's frequency unit → pandas period alias (pandas 2.2 renamed "H" to "h").
_PANDAS_UNIT = {"min": "min", "H": "h", "D": "D", "W": "W", "M": "M", "Y": "Y"}


class AlgorithmError(ValueError):
    """What the built-in reports as a ClientError/AlgorithmError: bad hyperparameters or data."""


# A model artifact is code: GluonTS deserialization locates (imports) every class its JSON names and
# builds instances of them. Only what :func:`train` writes may be named; anything else is refused
# before GluonTS reads the file (see deployment/README.md, "Model artifacts are code").
_TIME_FEATURES = ("second_of_minute", "minute_of_hour", "hour_of_day", "day_of_week", "day_of_month",
                  "day_of_year", "month_of_year", "week_of_year")
ALLOWED_MODEL_CLASSES = frozenset({
    "gluonts.torch.model.predictor.PyTorchPredictor",
    "gluonts.torch.model.deepar.lightning_module.DeepARLightningModule",
    "gluonts.model.forecast_generator.SampleForecastGenerator",
    "gluonts.torch.distributions.studentT.StudentTOutput",
    "gluonts.torch.distributions.distribution_output.NormalOutput",
    "gluonts.torch.distributions.distribution_output.BetaOutput",
    f"{__name__}.RealValuedNegativeBinomialOutput",
    "gluonts.transform._base.Chain",
    "gluonts.transform.convert.AsNumpyArray",
    "gluonts.transform.convert.VstackFeatures",
    "gluonts.transform.feature.AddAgeFeature",
    "gluonts.transform.feature.AddObservedValuesIndicator",
    "gluonts.transform.feature.AddTimeFeatures",
    "gluonts.transform.feature.DummyValueImputation",
    "gluonts.transform.field.RemoveFields",
    "gluonts.transform.field.SetField",
    "gluonts.transform.sampler.PredictionSplitSampler",
    "gluonts.transform.split.InstanceSplitter",
    "builtins.int", "builtins.float", "numpy.float32", "numpy.float64", "numpy.int64",
    *(f"gluonts.time_feature._base.{name}" for name in _TIME_FEATURES),
    *(f"gluonts.time_feature._base.{name}_index" for name in _TIME_FEATURES),
})


def serialized_classes(model_dir: Path) -> set[str]:
    """Every class name a GluonTS model folder asks deserialization to locate."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__kind__" in node:
                names.add(str(node.get("class")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    config = model_dir / "gluonts-config.json"
    if config.is_file():
        names.add(str(json.loads(config.read_text()).get("type")))
    legacy = model_dir / "type.txt"
    if legacy.is_file():
        names.add(legacy.read_text().strip())
    for path in sorted(model_dir.glob("*.json")):
        if path.name not in ("gluonts-config.json", MODEL_CONFIG_FILE):
            try:
                walk(json.loads(path.read_text()))
            except json.JSONDecodeError as exc:
                raise AlgorithmError(f"model artifact: {path.name} is not JSON ({exc.msg})") from None
    return names


def check_model_classes(model_dir: Path) -> None:
    """Refuse a model folder that names a class outside :data:`ALLOWED_MODEL_CLASSES` (raises AlgorithmError)."""
    foreign = sorted(serialized_classes(model_dir) - ALLOWED_MODEL_CLASSES)
    if foreign:
        raise AlgorithmError(f"model artifact refused: it names classes outside the DeepAR allow-list "
                             f"({', '.join(foreign[:5])}); model artifacts are code, so only the classes "
                             "a DeepAR training job writes may be loaded")


@dataclass(frozen=True)
class DeepARConfig:
    """Validated, typed hyperparameters (built-in names)."""

    time_freq: str
    context_length: int
    prediction_length: int
    epochs: int
    likelihood: str = "student-T"
    num_cells: int = 40
    num_layers: int = 2
    mini_batch_size: int = 128
    learning_rate: float = 1e-3
    dropout_rate: float = 0.1
    early_stopping_patience: int | None = None
    cardinality: str | list[int] = "auto"
    embedding_dimension: int = 10
    num_dynamic_feat: str | int = "auto"
    num_eval_samples: int = 100
    test_quantiles: tuple[float, ...] = DEFAULT_TEST_QUANTILES
    seed: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pandas_freq(self) -> str:
        """The pandas period alias of ``time_freq`` ("H" → "h", "5min" → "5min")."""
        mult, unit = _FREQ_RE.match(self.time_freq).groups()  # type: ignore[union-attr]
        return f"{mult}{_PANDAS_UNIT[unit]}"


def _int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        raise AlgorithmError(f"hyperparameter {name}={value!r}: not an integer") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise AlgorithmError(f"hyperparameter {name}={value!r}: out of range (expected {bound})")
    return number


def _float(name: str, value: Any, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise AlgorithmError(f"hyperparameter {name}={value!r}: not a number") from None
    ok_low = number > low if low_open else number >= low
    ok_high = number < high if high_open else number <= high
    if not (math.isfinite(number) and ok_low and ok_high):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise AlgorithmError(f"hyperparameter {name}={value!r}: out of range (expected {interval})")
    return number


def _int_list(name: str, value: Any) -> list[int]:
    if isinstance(value, list | tuple):
        items = list(value)
    else:
        try:
            items = json.loads(str(value))
        except json.JSONDecodeError:
            raise AlgorithmError(f"hyperparameter {name}={value!r}: expected a JSON list such as [3, 5]") from None
    if not isinstance(items, list) or not items:
        raise AlgorithmError(f"hyperparameter {name}={value!r}: expected a non-empty JSON list of positive integers")
    return [_int(f"{name}[{i}]", v) for i, v in enumerate(items)]


def validate_hyperparameters(hyperparameters: Mapping[str, Any]) -> DeepARConfig:
    """Check hyperparameters as the built-in DeepAR does and return them typed.

    Raises :class:`AlgorithmError` naming the first unknown, missing or bad hyperparameter.
    """
    hp = {str(k): v for k, v in hyperparameters.items()}
    unknown = sorted(k for k in hp if k not in _REQUIRED + _OPTIONAL + _INTERNAL)
    if unknown:
        raise AlgorithmError(
            f"unknown hyperparameter {unknown[0]!r}; DeepAR accepts: {', '.join(_REQUIRED + _OPTIONAL)}"
        )
    missing = [k for k in _REQUIRED if k not in hp]
    if missing:
        raise AlgorithmError(f"missing required hyperparameter {missing[0]!r} (required: {', '.join(_REQUIRED)})")
    freq = str(hp["time_freq"]).strip()
    match = _FREQ_RE.match(freq)
    if match is None or match.group(1) == "0":
        raise AlgorithmError(
            f"hyperparameter time_freq={hp['time_freq']!r}: expected a frequency such as H, 5min, D, W, M or Y"
        )
    kwargs: dict[str, Any] = {
        "time_freq": freq,
        "context_length": _int("context_length", hp["context_length"]),
        "prediction_length": _int("prediction_length", hp["prediction_length"]),
        "epochs": _int("epochs", hp["epochs"], maximum=1_000_000),
    }
    if "likelihood" in hp:
        lik = str(hp["likelihood"]).strip()
        if lik not in BUILTIN_LIKELIHOODS:
            raise AlgorithmError(
                f"hyperparameter likelihood={lik!r}: expected one of {', '.join(BUILTIN_LIKELIHOODS)}"
            )
        if lik not in SUPPORTED_LIKELIHOODS:
            raise AlgorithmError(
                f"hyperparameter likelihood={lik!r}: valid for SageMaker's DeepAR but not supported by the local "
                f"GluonTS stand-in; use one of {', '.join(SUPPORTED_LIKELIHOODS)}"
            )
        kwargs["likelihood"] = lik
    for name in ("num_cells", "num_layers", "mini_batch_size", "num_eval_samples", "embedding_dimension"):
        if name in hp:
            kwargs[name] = _int(name, hp[name], maximum=10_000)
    if "early_stopping_patience" in hp:
        kwargs["early_stopping_patience"] = _int("early_stopping_patience", hp["early_stopping_patience"])
    if "learning_rate" in hp:
        kwargs["learning_rate"] = _float("learning_rate", hp["learning_rate"], 0.0, 1.0, low_open=True)
    if "dropout_rate" in hp:
        kwargs["dropout_rate"] = _float("dropout_rate", hp["dropout_rate"], 0.0, 1.0, high_open=True)
    if "cardinality" in hp:
        raw = hp["cardinality"]
        text = "" if isinstance(raw, list | tuple) else str(raw).strip()
        kwargs["cardinality"] = text if text in ("auto", "ignore") else _int_list("cardinality", raw)
    if "num_dynamic_feat" in hp:
        text = str(hp["num_dynamic_feat"]).strip()
        kwargs["num_dynamic_feat"] = text if text in ("auto", "ignore") else _int("num_dynamic_feat", text, minimum=0)
    if "test_quantiles" in hp:
        raw = hp["test_quantiles"]
        try:
            qs = raw if isinstance(raw, list | tuple) else json.loads(str(raw))
        except json.JSONDecodeError:
            raise AlgorithmError(f"hyperparameter test_quantiles={raw!r}: expected a JSON list such as [0.1, 0.5, 0.9]") from None
        if not isinstance(qs, list) or not qs:
            raise AlgorithmError(f"hyperparameter test_quantiles={raw!r}: expected a non-empty list")
        kwargs["test_quantiles"] = tuple(
            _float(f"test_quantiles[{i}]", q, 0.0, 1.0, low_open=True, high_open=True) for i, q in enumerate(qs)
        )
    if "_seed" in hp:
        kwargs["seed"] = _int("_seed", hp["_seed"], minimum=0)
    kwargs["extra"] = {k: str(hp[k]) for k in _INTERNAL if k in hp and k != "_seed"}
    return DeepARConfig(**kwargs)


# --------------------------------------------------------------------------- data


def read_channel(path: Path) -> list[dict]:
    """Read every DeepAR JSON line under a channel folder (or one file), validated and normalised."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    elif path.is_file():
        files = [path]
    else:
        raise AlgorithmError(f"channel {path}: does not exist")
    series: list[dict] = []
    for file in files:
        with file.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    series.append(parse_batch_line(line, number))
                except InvalidRequest as exc:
                    raise AlgorithmError(f"{file.name}: {exc}") from None
    if not series:
        raise AlgorithmError(f"channel {path}: no time series found (expected DeepAR JSON lines)")
    return series


def _resolve_features(config: DeepARConfig, series: Sequence[dict]) -> tuple[list[int], int]:
    """Cardinality and number of dynamic features, as the built-in's "auto"/"ignore" resolve them."""
    cats = [s.get("cat") for s in series]
    if config.cardinality == "ignore":
        cardinality: list[int] = []
    else:
        lengths = {len(c) for c in cats if c is not None}
        if any(c is None for c in cats) and lengths:
            raise AlgorithmError("some series have 'cat' and some do not; every series needs the same 'cat' length")
        if len(lengths) > 1:
            raise AlgorithmError(f"series have 'cat' of different lengths {sorted(lengths)}")
        width = lengths.pop() if lengths else 0
        observed = [max(c[i] for c in cats) + 1 for i in range(width)] if width else []  # type: ignore[index]
        if config.cardinality == "auto":
            cardinality = observed
        else:
            cardinality = list(config.cardinality)  # type: ignore[arg-type]
            if len(cardinality) != width:
                raise AlgorithmError(
                    f"hyperparameter cardinality={cardinality}: has {len(cardinality)} entries but the data's "
                    f"'cat' has {width}"
                )
            for i, (given, seen) in enumerate(zip(cardinality, observed, strict=True)):
                if seen > given:
                    raise AlgorithmError(
                        f"hyperparameter cardinality={cardinality}: cat[{i}] takes value {seen - 1}, "
                        f"which needs cardinality[{i}] >= {seen}"
                    )
    feats = {len(s.get("dynamic_feat", [])) for s in series}
    if config.num_dynamic_feat == "ignore":
        num_dynamic = 0
    else:
        if len(feats) > 1:
            raise AlgorithmError(f"series have different numbers of dynamic features {sorted(feats)}")
        num_dynamic = feats.pop() if feats else 0
        if config.num_dynamic_feat != "auto" and config.num_dynamic_feat != num_dynamic:
            raise AlgorithmError(
                f"hyperparameter num_dynamic_feat={config.num_dynamic_feat}: the data has {num_dynamic} dynamic features"
            )
    return cardinality, num_dynamic


def _gluonts_entry(
    instance: Mapping[str, Any], freq: str, cardinality: Sequence[int], num_dynamic: int, horizon: int = 0
) -> dict:
    """A DeepAR JSON object → a GluonTS data entry (``cat``/``dynamic_feat`` renamed)."""
    import pandas as pd

    target = np.asarray(instance["target"], dtype=np.float32)
    entry: dict[str, Any] = {"start": pd.Period(instance["start"], freq=freq), "target": target}
    if cardinality:
        entry["feat_static_cat"] = np.asarray(instance["cat"], dtype=np.int64)
    if num_dynamic:
        feats = np.asarray(instance["dynamic_feat"], dtype=np.float32)
        if feats.shape != (num_dynamic, len(target) + horizon):
            raise InvalidRequest(
                f"dynamic_feat has shape {list(feats.shape)}; expected [{num_dynamic}, len(target) + {horizon}]"
            )
        entry["feat_dynamic_real"] = feats
    return entry


class RealValuedNegativeBinomialOutput(NegativeBinomialOutput):
    """Negative binomial that scores real-valued targets (concentrations), as the built-in does.

    torch checks that observations are integers; its log-density is the continuous extension
    (lgamma), which is what DeepAR fits on non-integer data, so that check is off.
    """

    def distribution(self, distr_args, loc=None, scale=None):  # type: ignore[no-untyped-def]
        total_count, logits = distr_args
        if scale is not None:
            logits = logits + scale.log()
        return NegativeBinomial(total_count=total_count, logits=logits, validate_args=False)


def _distr_output(likelihood: str) -> Any:
    from gluonts.torch.distributions import BetaOutput, NormalOutput, StudentTOutput

    if likelihood == "negative-binomial":
        return RealValuedNegativeBinomialOutput()
    return {"gaussian": NormalOutput, "student-T": StudentTOutput, "beta": BetaOutput}[likelihood]()


def _check_likelihood_domain(likelihood: str, series: Sequence[dict]) -> None:
    values = np.concatenate([np.asarray(s["target"], dtype=float) for s in series])
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise AlgorithmError("the train channel has no observed target values (all NaN)")
    if likelihood == "negative-binomial" and values.min() < 0:
        raise AlgorithmError(f"likelihood=negative-binomial needs non-negative targets; found {values.min():g}")
    if likelihood == "beta" and (values.min() <= 0 or values.max() >= 1):
        raise AlgorithmError("likelihood=beta needs targets strictly between 0 and 1")


# --------------------------------------------------------------------------- training


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "gluonts"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _epoch_progress(max_epochs: int) -> Any:
    """A Lightning callback printing one line per epoch (epoch, loss, elapsed) to stderr."""
    from lightning.pytorch.callbacks import Callback

    class EpochProgress(Callback):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            loss = trainer.callback_metrics.get("train_loss")
            width = 20
            done = int(width * (trainer.current_epoch + 1) / max_epochs)
            print(f"[TrainDeepAR] [{'#' * done}{'.' * (width - done)}] epoch {trainer.current_epoch + 1}/{max_epochs}"
                  f"  loss {float(loss) if loss is not None else float('nan'):.3f}"
                  f"  {time.perf_counter() - self.started:.0f} s", file=sys.stderr, flush=True)

    return EpochProgress()


def _build_estimator(config: DeepARConfig, cardinality: list[int], num_dynamic: int, root_dir: str, progress: bool) -> Any:
    from gluonts.torch.model.deepar import DeepAREstimator

    callbacks: list[Any] = [_epoch_progress(config.epochs)] if progress else []
    if config.early_stopping_patience is not None:
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(EarlyStopping(monitor="train_loss", patience=config.early_stopping_patience, mode="min"))
    return DeepAREstimator(
        freq=config.pandas_freq,
        prediction_length=config.prediction_length,
        context_length=config.context_length,
        num_layers=config.num_layers,
        hidden_size=config.num_cells,
        lr=config.learning_rate,
        dropout_rate=config.dropout_rate,
        num_feat_dynamic_real=num_dynamic,
        num_feat_static_cat=len(cardinality),
        cardinality=cardinality or None,
        embedding_dimension=[config.embedding_dimension] * len(cardinality) if cardinality else None,
        distr_output=_distr_output(config.likelihood),
        num_parallel_samples=config.num_eval_samples,
        batch_size=config.mini_batch_size,
        num_batches_per_epoch=NUM_BATCHES_PER_EPOCH,
        # Non-negative quantities stay non-negative in the samples.
        nonnegative_pred_samples=config.likelihood in ("negative-binomial", "beta"),
        trainer_kwargs={
            "max_epochs": config.epochs,
            "accelerator": "cpu",
            "devices": 1,
            # GluonTS adds its own ModelCheckpoint; keep its files in a temp dir we delete.
            "default_root_dir": root_dir,
            "logger": False,
            "enable_model_summary": False,
            # a live bar on a terminal; log files get the one-line-per-epoch callback instead
            "enable_progress_bar": progress and sys.stderr.isatty(),
            "deterministic": True,
            "callbacks": callbacks,
        },
    )


def train(
    hyperparameters: Mapping[str, Any],
    channels: Mapping[str, Path],
    model_dir: Path,
    progress: bool = True,
) -> dict[str, float]:
    """Train DeepAR as the built-in does and write the model files into ``model_dir``.

    ``channels`` maps ``"train"`` (required) and ``"test"`` (optional) to folders of DeepAR JSON
    lines. Returns the metrics the built-in reports: ``train:final_loss`` and, with a test channel,
    ``test:RMSE``, ``test:mean_wQuantileLoss`` and ``test:wQuantileLoss[q]`` scored on the last
    ``prediction_length`` points of every test series.
    """
    with _quiet_libraries():
        return _train(hyperparameters, channels, model_dir, progress)


def _train(hyperparameters: Mapping[str, Any], channels: Mapping[str, Path], model_dir: Path,
           progress: bool) -> dict[str, float]:
    config = validate_hyperparameters(hyperparameters)
    unknown = sorted(set(channels) - {"train", "test"})
    if unknown:
        raise AlgorithmError(f"unknown channel(s) {unknown}; DeepAR reads 'train' and 'test'")
    if "train" not in channels:
        raise AlgorithmError("missing the 'train' channel")
    train_series = read_channel(Path(channels["train"]))
    test_series = read_channel(Path(channels["test"])) if channels.get("test") else None
    cardinality, num_dynamic = _resolve_features(config, train_series)
    _check_likelihood_domain(config.likelihood, train_series)
    freq = config.pandas_freq
    log.info("DeepAR: %d train series, cardinality %s, %d dynamic features", len(train_series), cardinality, num_dynamic)

    import lightning.pytorch as pl
    import torch

    _quiet_lightning()
    pl.seed_everything(config.seed, workers=True, verbose=False)
    dataset = [_gluonts_entry(s, freq, cardinality, num_dynamic) for s in train_series]
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    root = tempfile.mkdtemp(prefix="aircast-deepar-")
    started = time.perf_counter()
    try:
        estimator = _build_estimator(config, cardinality, num_dynamic, root, progress)
        output = estimator.train_model(dataset, cache_data=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    train_seconds = time.perf_counter() - started
    final_loss = output.trainer.callback_metrics.get("train_loss")
    metrics: dict[str, float] = {"train:final_loss": float(final_loss) if final_loss is not None else math.nan}
    metrics["train:seconds"] = train_seconds

    output.predictor.serialize(model_dir)
    (model_dir / MODEL_CONFIG_FILE).write_text(
        json.dumps(
            {
                "hyperparameters": {k: str(v) for k, v in hyperparameters.items()},
                "freq": freq,
                "time_freq": config.time_freq,
                "prediction_length": config.prediction_length,
                "context_length": config.context_length,
                "likelihood": config.likelihood,
                "cardinality": cardinality,
                "num_dynamic_feat": num_dynamic,
                "num_eval_samples": config.num_eval_samples,
                "seed": config.seed,
            },
            indent=2,
        )
    )
    if test_series is not None:
        predictor = DeepARPredictor.load(model_dir)
        torch.manual_seed(config.seed)
        try:
            metrics.update(predictor.score(test_series, config.test_quantiles, config.num_eval_samples))
        except InvalidRequest as exc:
            raise AlgorithmError(f"test channel: {exc.message}") from None
    return metrics


# --------------------------------------------------------------------------- inference


class DeepARPredictor:
    """A trained model answering DeepAR inference requests."""

    def __init__(self, predictor: Any, meta: dict[str, Any]) -> None:
        self._predictor = predictor
        self.meta = meta
        self.freq: str = meta["freq"]
        self.prediction_length: int = int(meta["prediction_length"])
        self.cardinality: list[int] = list(meta.get("cardinality") or [])
        self.num_dynamic_feat: int = int(meta.get("num_dynamic_feat") or 0)

    @classmethod
    def load(cls, model_dir: Path) -> DeepARPredictor:
        """Load the model files :func:`train` wrote."""
        model_dir = Path(model_dir)
        meta_path = model_dir / MODEL_CONFIG_FILE
        if not meta_path.is_file():
            raise AlgorithmError(f"{model_dir}: not a DeepAR model (no {MODEL_CONFIG_FILE})")
        check_model_classes(model_dir)
        from gluonts.torch.model.predictor import PyTorchPredictor

        _quiet_lightning()
        with _quiet_libraries():
            predictor = PyTorchPredictor.deserialize(model_dir, device="cpu")
        return cls(predictor, json.loads(meta_path.read_text()))

    @classmethod
    def from_tarball(cls, path: Path, extract_to: Path | None = None) -> DeepARPredictor:
        """Load from a ``model.tar.gz`` (extracted into ``extract_to`` or a temporary folder)."""
        target = Path(extract_to) if extract_to is not None else Path(tempfile.mkdtemp(prefix="aircast-model-"))
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(target, filter="data")
        return cls.load(target)

    def _entries(self, instances: Sequence[Mapping[str, Any]]) -> list[dict]:
        entries = []
        for i, inst in enumerate(instances):
            if self.cardinality:
                cat = inst.get("cat")
                if cat is None:
                    raise InvalidRequest(f"instances[{i}].cat: missing; the model was trained with categories")
                if len(cat) != len(self.cardinality):
                    raise InvalidRequest(
                        f"instances[{i}].cat: has {len(cat)} values; the model expects {len(self.cardinality)}"
                    )
                for j, (c, card) in enumerate(zip(cat, self.cardinality, strict=True)):
                    if c >= card:
                        raise InvalidRequest(
                            f"instances[{i}].cat[{j}]: {c} was not seen in training (cardinality {card})"
                        )
            if self.num_dynamic_feat and "dynamic_feat" not in inst:
                raise InvalidRequest(f"instances[{i}].dynamic_feat: missing; the model was trained with them")
            try:
                entries.append(
                    _gluonts_entry(inst, self.freq, self.cardinality, self.num_dynamic_feat, self.prediction_length)
                )
            except InvalidRequest as exc:
                raise InvalidRequest(f"instances[{i}].{exc.message}") from None
        return entries

    def sample(self, instances: Sequence[Mapping[str, Any]], num_samples: int) -> list[np.ndarray]:
        """Sample paths, one array of shape (num_samples, prediction_length) per instance."""
        entries = self._entries(instances)
        with _quiet_libraries():
            return [np.asarray(f.samples) for f in self._predictor.predict(entries, num_samples=num_samples)]

    def predict(self, instances: Sequence[Mapping[str, Any]], configuration: Mapping[str, Any] | None = None) -> list[dict]:
        """DeepAR response objects for validated instances (see ``deepar_format.parse_request``).

        Series shorter than the context are fine: the missing history is padded and masked as
        DeepAR does.
        """
        conf = validate_configuration(dict(configuration) if configuration is not None else {})
        out: list[dict] = []
        for samples in self.sample(instances, conf["num_samples"]):
            prediction: dict[str, Any] = {}
            for kind in conf["output_types"]:
                if kind == "mean":
                    prediction["mean"] = samples.mean(axis=0).tolist()
                elif kind == "quantiles":
                    levels = [float(q) for q in conf["quantiles"]]
                    values = np.quantile(samples, levels, axis=0)
                    prediction["quantiles"] = {q: v.tolist() for q, v in zip(conf["quantiles"], values, strict=True)}
                elif kind == "samples":
                    prediction["samples"] = samples.tolist()
            out.append(prediction)
        return out

    def score(self, series: Sequence[dict], quantiles: Iterable[float], num_samples: int) -> dict[str, float]:
        """Built-in-style test metrics on the last ``prediction_length`` points of each series."""
        pl_ = self.prediction_length
        usable = [s for s in series if len(s["target"]) > pl_]
        if not usable:
            raise AlgorithmError(f"test channel: no series longer than prediction_length={pl_}")
        history = [{**s, "target": s["target"][:-pl_]} for s in usable]
        labels = np.array([s["target"][-pl_:] for s in usable], dtype=float)
        samples = np.stack(self.sample(history, num_samples))
        qs = list(quantiles)
        observed = ~np.isnan(labels)
        metrics: dict[str, float] = {}
        mean = samples.mean(axis=1)
        # Per-series MSE averaged over series, then the root, as GluonTS's Evaluator aggregates RMSE.
        per_series = [
            float(np.mean((labels[i][observed[i]] - mean[i][observed[i]]) ** 2))
            for i in range(len(labels))
            if observed[i].any()
        ]
        metrics["test:RMSE"] = math.sqrt(float(np.mean(per_series))) if per_series else math.nan
        losses = []
        for q in qs:
            wql = _weighted_quantile_loss(labels, np.quantile(samples, q, axis=1), q)
            metrics[f"test:wQuantileLoss[{q:g}]"] = wql
            losses.append(wql)
        metrics["test:mean_wQuantileLoss"] = float(np.mean(losses))
        return metrics


def _weighted_quantile_loss(labels: np.ndarray, forecast: np.ndarray, q: float) -> float:
    """The built-in's ``test:wQuantileLoss[q]``: ``2 * sum |(y - f_q) * (1[y <= f_q] - q)| / sum |y|`` over
    the observed (non-NaN) points of every test series; NaN when they sum to 0.

    The algorithm's own metric (AWS's "Tune a DeepAR model" lists ``test:mean_wQuantileLoss``, the mean
    over ``test_quantiles``), reported as the built-in reports it. The project's forecast metrics
    (``evaluation.metrics``) use the same definition; the emulator keeps this copy because it imports
    nothing of the project (``tests/forecast/test_metrics.py`` checks that the two agree).
    """
    observed = ~np.isnan(labels)
    y = np.where(observed, labels, 0.0)
    abs_sum = float(np.abs(y).sum())
    loss = 2.0 * np.abs((y - forecast) * ((y <= forecast).astype(float) - q))[observed].sum()
    return float(loss / abs_sum) if abs_sum > 0 else math.nan


def batch_transform(
    predictor: DeepARPredictor,
    input_file: Path,
    output_file: Path,
    configuration: Mapping[str, Any] | None = None,
    batch_size: int = 64,
) -> int:
    """Batch transform as SageMaker runs it for DeepAR: one instance per input line, one
    prediction per output line (same order), configuration from ``DEEPAR_INFERENCE_CONFIG``
    when none is given. Returns the number of lines written; a bad record raises
    :class:`InvalidRequest` naming the file and line."""
    from infra.local.sagemaker.deepar_format import format_batch_line, inference_config_from_env

    conf = validate_configuration(dict(configuration)) if configuration is not None else inference_config_from_env()
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    tmp = output_file.with_name(output_file.name + ".partial")
    with Path(input_file).open("rb") as src, tmp.open("wb") as dst:
        batch: list[dict] = []

        def flush() -> None:
            nonlocal written
            for prediction in predictor.predict(batch, conf):
                dst.write(format_batch_line(prediction))
                written += 1
            batch.clear()

        for number, line in enumerate(src, start=1):
            if not line.strip():
                continue
            try:
                batch.append(parse_batch_line(line, number, predictor.prediction_length if predictor.num_dynamic_feat else None))
            except InvalidRequest as exc:
                # A bad record is the request's fault (ClientError), as in a real transform job.
                raise InvalidRequest(f"{Path(input_file).name}: {exc.message}") from None
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    tmp.replace(output_file)
    return written
