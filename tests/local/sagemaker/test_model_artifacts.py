"""Model artifacts are code (GluonTS deserialization imports and builds the classes a model's JSON
names): the local DeepAR refuses an archive naming a class outside its allow-list, before GluonTS
reads it, so nothing in the archive gets imported."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

from infra.local.sagemaker.deepar import (
    ALLOWED_MODEL_CLASSES,
    MODEL_CONFIG_FILE,
    AlgorithmError,
    DeepARPredictor,
    serialized_classes,
)


def _model_dir(root: Path, evil_class: str) -> Path:
    """A model folder shaped like a trained one whose predictor.json also names ``evil_class``."""
    model = root / "model"
    model.mkdir()
    (model / "gluonts-config.json").write_text(json.dumps(
        {"model": "0.17.0", "gluonts": "0.17.0", "type": "gluonts.torch.model.predictor.PyTorchPredictor"}))
    (model / "predictor.json").write_text(json.dumps({
        "__kind__": "instance", "class": "gluonts.torch.model.predictor.PyTorchPredictor",
        "kwargs": {"prediction_length": 6, "input_names": ["past_target"],
                   "input_transform": {"__kind__": "instance", "class": "gluonts.transform._base.Chain",
                                       "kwargs": {"transformations": [
                                           {"__kind__": "type", "class": "gluonts.time_feature._base.hour_of_day"},
                                           {"__kind__": "type", "class": evil_class}]}}}}))
    (model / MODEL_CONFIG_FILE).write_text(json.dumps({"freq": "h", "prediction_length": 6}))
    return model


@pytest.fixture
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module on sys.path that leaves a marker file when imported (what a hostile archive would run)."""
    marker = tmp_path / "imported"
    (tmp_path / "aircast_evil_payload.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "aircast_evil_payload", raising=False)
    return marker


def test_a_model_naming_a_class_outside_the_allow_list_is_refused_before_it_is_imported(tmp_path, evil_module):
    model = _model_dir(tmp_path, "aircast_evil_payload.Thing")
    assert serialized_classes(model) - ALLOWED_MODEL_CLASSES == {"aircast_evil_payload.Thing"}
    with pytest.raises(AlgorithmError, match=r"allow-list \(aircast_evil_payload.Thing\)"):
        DeepARPredictor.load(model)
    assert not evil_module.exists(), "the archive's module was imported"

    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(model.iterdir()):
            tar.add(path, arcname=path.name)
    with pytest.raises(AlgorithmError, match="model artifacts are code"):
        DeepARPredictor.from_tarball(tarball, tmp_path / "extracted")
    assert not evil_module.exists()


@pytest.mark.slow
def test_a_trained_model_names_only_allowed_classes(model_tarball, tmp_path):
    with tarfile.open(model_tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    assert serialized_classes(tmp_path) <= ALLOWED_MODEL_CLASSES
    assert "gluonts.torch.model.predictor.PyTorchPredictor" in serialized_classes(tmp_path)
