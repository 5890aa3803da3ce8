"""A tiny real GluonTS DeepAR training → model files → predictor → DeepAR responses."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from infra.local.sagemaker.deepar import AlgorithmError, DeepARPredictor, batch_transform, train
from infra.local.sagemaker.deepar_format import InvalidRequest, format_response, parse_request

PL = 6
TINY = {
    "time_freq": "H", "prediction_length": str(PL), "context_length": "12", "epochs": "1",
    "mini_batch_size": "8", "num_cells": "8", "num_layers": "1", "likelihood": "negative-binomial",
    "num_eval_samples": "20", "test_quantiles": "[0.1, 0.5, 0.9]", "early_stopping_patience": "5", "_seed": "3",
}


def write_channels(root: Path, n_series: int = 3, hours: int = 96) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    train_dir, test_dir = root / "train", root / "test"
    train_dir.mkdir(parents=True)
    test_dir.mkdir(parents=True)
    with (train_dir / "train.json").open("w") as tr, (test_dir / "test.json").open("w") as te:
        for i in range(n_series):
            y = 30 + 10 * np.sin(np.arange(hours) * 2 * np.pi / 24) + rng.normal(0, 2, hours) + 5 * i
            target = ["NaN" if k % 17 == 5 else round(float(v), 2) for k, v in enumerate(y)]
            cat = [i % 2, i]
            tr.write(json.dumps({"start": "2021-03-01 00:00:00", "target": target[:-PL], "cat": cat}) + "\n")
            te.write(json.dumps({"start": "2021-03-01 00:00:00", "target": target, "cat": cat}) + "\n")
    return {"train": train_dir, "test": test_dir}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float], dict[str, Path]]:
    root = tmp_path_factory.mktemp("deepar")
    channels = write_channels(root)
    model_dir = root / "model"
    metrics = train(TINY, channels, model_dir, progress=False)
    return model_dir, metrics, channels


@pytest.mark.slow
def test_training_reports_builtin_metrics_and_writes_model(trained) -> None:
    model_dir, metrics, _ = trained
    for key in ("train:final_loss", "test:RMSE", "test:mean_wQuantileLoss", "test:wQuantileLoss[0.1]",
                "test:wQuantileLoss[0.9]"):
        assert np.isfinite(metrics[key]), key
    assert metrics["test:mean_wQuantileLoss"] == pytest.approx(
        np.mean([metrics[f"test:wQuantileLoss[{q}]"] for q in ("0.1", "0.5", "0.9")]))
    meta = json.loads((model_dir / "aircast-deepar.json").read_text())
    assert meta["cardinality"] == [2, 3] and meta["freq"] == "h" and meta["prediction_length"] == PL
    # Lightning's checkpoints stay in a temp dir that is removed: only model files are left.
    assert not list(model_dir.rglob("*.ckpt")) and not (model_dir / "lightning_logs").exists()


@pytest.mark.slow
def test_predict_round_trip_through_the_wire_format(trained, tmp_path: Path) -> None:
    model_dir, _, _ = trained
    body = json.dumps({
        "instances": [
            {"start": "2021-03-01 00:00:00", "target": [30.0, "NaN", 33.5, 31.0], "cat": [0, 0]},  # shorter than context
            {"start": "2021-03-02 05:00:00", "target": list(np.linspace(20, 40, 50)), "cat": [1, 2]},
        ],
        "configuration": {"num_samples": 30, "output_types": ["mean", "quantiles", "samples"], "quantiles": ["0.1", "0.9"]},
    }).encode()
    instances, configuration = parse_request(body)
    predictor = DeepARPredictor.load(model_dir)
    predictions = predictor.predict(instances, configuration)
    assert len(predictions) == 2
    for p in predictions:
        assert set(p) == {"mean", "quantiles", "samples"}
        assert len(p["mean"]) == PL and set(p["quantiles"]) == {"0.1", "0.9"}
        assert len(p["samples"]) == 30 and all(len(s) == PL for s in p["samples"])
        assert all(lo <= hi for lo, hi in zip(p["quantiles"]["0.1"], p["quantiles"]["0.9"], strict=True))
        assert min(min(s) for s in p["samples"]) >= 0  # negative binomial: non-negative
    decoded = json.loads(format_response(predictions))
    assert len(decoded["predictions"]) == 2

    # Default configuration: mean + the nine deciles; num_samples honoured.
    default = predictor.predict(instances[:1], None)[0]
    assert set(default) == {"mean", "quantiles"} and len(default["quantiles"]) == 9

    # Requests the model cannot answer say why.
    with pytest.raises(InvalidRequest, match=r"instances\[0\].cat: missing"):
        predictor.predict([{"start": "2021-03-01 00:00:00", "target": [1.0]}], None)
    with pytest.raises(InvalidRequest, match=r"instances\[0\].cat\[1\]: 7 was not seen in training"):
        predictor.predict([{"start": "2021-03-01 00:00:00", "target": [1.0], "cat": [0, 7]}], None)

    # model.tar.gz holds the model_dir files, as a SageMaker model artifact.
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for f in model_dir.iterdir():
            tar.add(f, arcname=f.name)
    again = DeepARPredictor.from_tarball(tarball, tmp_path / "extracted")
    assert len(again.predict(instances, {"num_samples": 5})) == 2


@pytest.mark.slow
def test_batch_transform_one_line_per_instance(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir, _, channels = trained
    monkeypatch.setenv("DEEPAR_INFERENCE_CONFIG", json.dumps({"num_samples": 10, "output_types": ["mean", "quantiles"],
                                                              "quantiles": ["0.1", "0.5", "0.9"]}))
    out = tmp_path / "out" / "test.json.out"
    n = batch_transform(DeepARPredictor.load(model_dir), channels["test"] / "test.json", out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert n == len(lines) == 3
    assert all(set(p["quantiles"]) == {"0.1", "0.5", "0.9"} and len(p["mean"]) == PL for p in lines)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"start": "2021-03-01 00:00:00", "target": [1.0], "cat": [0, 0]}\n{"start": "x", "target": [1]}\n')
    with pytest.raises(InvalidRequest, match=r"bad.jsonl: line 2.start: 'x' is not a timestamp"):
        batch_transform(DeepARPredictor.load(model_dir), bad, tmp_path / "bad.out")


@pytest.mark.slow
def test_same_seed_same_model(trained, tmp_path: Path) -> None:
    _, metrics, channels = trained
    again = train(TINY, channels, tmp_path / "model", progress=False)
    assert again["train:final_loss"] == pytest.approx(metrics["train:final_loss"], rel=1e-6)


def test_bad_training_inputs_are_named(tmp_path: Path) -> None:
    channels = write_channels(tmp_path)
    with pytest.raises(AlgorithmError, match="unknown hyperparameter 'epoch'"):
        train({**TINY, "epoch": "1"}, channels, tmp_path / "m")
    with pytest.raises(AlgorithmError, match="missing the 'train' channel"):
        train(TINY, {"test": channels["test"]}, tmp_path / "m")
    with pytest.raises(AlgorithmError, match=r"cardinality=\[2, 2\]: cat\[1\] takes value 2"):
        train({**TINY, "cardinality": "[2, 2]"}, channels, tmp_path / "m")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.json").write_text('{"start": "2021-01-01 00:00:00", "target": [1, "x"]}\n')
    with pytest.raises(AlgorithmError, match=r"train.json: line 1.target\[1\]: 'x' is not a number"):
        train(TINY, {"train": bad}, tmp_path / "m")
    (bad / "train.json").write_text('{"start": "2021-01-01 00:00:00", "target": [1, -2]}\n')
    with pytest.raises(AlgorithmError, match="negative-binomial needs non-negative targets"):
        train(TINY, {"train": bad}, tmp_path / "m")
