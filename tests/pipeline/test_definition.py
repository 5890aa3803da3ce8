"""The pipeline definition: step graph, parameters, hyperparameters, property files, offline build, CLIs."""

from __future__ import annotations

import json

import pytest

from infra.local.sagemaker.expressions import resolve
from infra.local.sagemaker.pipeline_definition import resolve_parameters, step_graph
from pipelines.code import code_version
from tests.pipeline.conftest import ROLE

STEPS = ["Preprocess", "TuneDeepAR", "CreateModel", "BatchForecast", "Evaluate", "QualityGate",
         "RegisterModel", "Deploy", "QualityGateFailed"]


def test_step_graph(definition: dict) -> None:
    graph = step_graph(definition)
    assert list(graph) == STEPS
    assert {n: graph[n].type for n in STEPS} == {
        "Preprocess": "Processing", "TuneDeepAR": "Tuning", "CreateModel": "Model", "BatchForecast": "Transform",
        "Evaluate": "Processing", "QualityGate": "Condition", "RegisterModel": "RegisterModel", "Deploy": "Lambda",
        "QualityGateFailed": "Fail"}
    deps = {n: graph[n].depends_on for n in STEPS}
    assert deps["Preprocess"] == set()
    assert deps["TuneDeepAR"] == {"Preprocess"}
    assert deps["CreateModel"] == {"TuneDeepAR"}
    assert deps["BatchForecast"] == {"CreateModel", "Preprocess"}
    assert deps["Evaluate"] == {"BatchForecast", "Preprocess", "TuneDeepAR"}
    assert deps["QualityGate"] == {"Evaluate"}
    assert deps["RegisterModel"] == {"QualityGate", "TuneDeepAR", "Evaluate"}
    assert deps["Deploy"] == {"QualityGate", "RegisterModel"}
    assert graph["RegisterModel"].guards == (("QualityGate", True),)
    assert graph["QualityGateFailed"].guards == (("QualityGate", False),)


def test_parameters_are_overridable(definition: dict) -> None:
    params = {p["Name"]: p for p in definition["Parameters"]}
    for name in ("InputDataUri", "Frequency", "PredictionLength", "ContextLength", "Epochs", "NumCells", "NumLayers",
                 "Likelihood", "MiniBatchSize", "LearningRate", "DropoutRate", "EarlyStoppingPatience",
                 "NumEvalWindows", "NumValidationWindows", "TuningStrategy", "MaxTuningJobs",
                 "MaxParallelTuningJobs", "MaxRelativeWQL", "MaxMeanWQL", "ModelApprovalStatus", "ProcessingInstanceType",
                 "TrainingInstanceType", "TransformInstanceType", "EndpointName"):
        assert name in params, name
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert params["MaxRelativeWQL"] == {"Name": "MaxRelativeWQL", "Type": "Float", "DefaultValue": 0.9}
    assert params["Epochs"]["Type"] == "Integer"
    text = json.dumps(definition["Steps"])
    # every parameter is read somewhere, so overriding any of them changes the run
    for name in params:
        assert f'"Parameters.{name}"' in text, f"parameter {name} is never used"
    values = resolve_parameters(definition, {"Epochs": "3", "LearningRate": "0.01", "Likelihood": "student-T"})
    assert (values["Epochs"], values["LearningRate"], values["Likelihood"]) == (3, 0.01, "student-T")
    with pytest.raises(ValueError, match="Epochz.*accepted: .*Epochs"):
        resolve_parameters(definition, {"Epochz": "3"})
    with pytest.raises(ValueError, match="Epochs must be a Integer"):
        resolve_parameters(definition, {"Epochs": "many"})
    with pytest.raises(ValueError, match="ModelApprovalStatus must be one of"):
        resolve_parameters(definition, {"ModelApprovalStatus": "Maybe"})


def test_starting_values_default_to_preprocess_defaults(definition: dict) -> None:
    """The pipeline's starting-value parameters default to what Preprocess starts from when run alone
    (``processing.data_profile.BASE_DEFAULTS``, chosen on the suite's validation weeks), and ``Epochs``
    to 0, read from the training history, as Preprocess's own default: a change of one cannot leave
    the other behind."""
    from processing.data_profile import BASE_DEFAULTS
    from processing.preprocess import parse_args

    params = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    names = {"LearningRate": "learning_rate", "NumCells": "num_cells", "NumLayers": "num_layers",
             "MiniBatchSize": "mini_batch_size", "DropoutRate": "dropout_rate"}
    assert {name: params[name] for name in names} == {name: BASE_DEFAULTS[key] for name, key in names.items()}
    cli = parse_args(["--input-dir", "in", "--output-dir", "out"])
    assert {key: getattr(cli, key) for key in names.values()} == {key: BASE_DEFAULTS[key] for key in names.values()}
    assert params["Epochs"] == cli.epochs == 0


class _Ctx:
    """What the tuning step's arguments read: parameters, Preprocess's outputs and its property file."""

    def __init__(self, params: dict, hyperparameters: dict | None = None) -> None:
        self.params = params
        self.hyperparameters = hyperparameters or {}

    def parameter(self, name: str):
        return self.params[name]

    def execution_variable(self, name: str):
        return "exec123"

    def step_properties(self, step: str):
        return {"ProcessingOutputConfig": {"Outputs": [{"OutputName": n, "S3Output": {"S3Uri": f"s3://b/{n}"}}
                                                       for n in ("train", "test", "evaluation", "metadata")]}}

    def property_file(self, step, name):
        assert (step, name) == ("Preprocess", "Hyperparameters")
        return self.hyperparameters

    def read_json_uri(self, uri):  # pragma: no cover
        raise AssertionError


def test_tuning_step_is_a_deepar_tuning_job_aws_would_accept(definition: dict) -> None:
    """The resolved TuneDeepAR arguments pass the local tuner's checks of AWS's rules."""
    import numpy as np
    import pandas as pd

    from infra.local.sagemaker.tuning import _check_tuning_request, parameter_space
    from processing.preprocess import build_dataset, normalise_hourly

    hours = pd.date_range("2024-01-01", periods=24 * 60, freq="h")
    frame = pd.DataFrame({"thing_name": "a", "pollutant": "pm2_5", "hour": hours,
                          "mean": 40 + 10 * np.sin(np.arange(len(hours)) / 24 * 2 * np.pi)})
    hyperparameters = build_dataset(normalise_hourly(frame), 24, 0, 7).hyperparameters
    tune = next(s for s in definition["Steps"] if s["Name"] == "TuneDeepAR")["Arguments"]
    args = resolve(tune, _Ctx(resolve_parameters(definition, {"MaxTuningJobs": "6"}), hyperparameters))
    config, job = args["HyperParameterTuningJobConfig"], args["TrainingJobDefinition"]
    assert config["Strategy"] == "Bayesian" and config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6,
                                                                              "MaxParallelTrainingJobs": 2}
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "test:mean_wQuantileLoss"}
    assert "forecasting-deepar" in job["AlgorithmSpecification"]["TrainingImage"]
    assert job["AlgorithmSpecification"]["TrainingImage"].startswith("224300973850.dkr.ecr.eu-west-1")
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "test"]
    assert job["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://b/test"
    assert job["StaticHyperParameters"]["likelihood"] == hyperparameters["start"]["likelihood"]
    assert all(isinstance(v, str) for v in job["StaticHyperParameters"].values())
    space = {p["name"]: p for p in parameter_space(config["ParameterRanges"])}
    assert set(space) == {"context_length", "epochs", "learning_rate", "num_cells", "num_layers", "mini_batch_size",
                          "dropout_rate", "embedding_dimension"}
    assert space["context_length"]["low"] == hyperparameters["ranges"]["context_length"]["MinValue"]
    _check_tuning_request(config, job, "CreateHyperParameterTuningJob")  # raises what AWS would refuse
    # the best training job's model goes on: TrainingJobSummaries[0] is the best, as Pipelines documents
    model = next(s for s in definition["Steps"] if s["Name"] == "CreateModel")["Arguments"]
    url = model["PrimaryContainer"]["ModelDataUrl"]["Std:Join"]["Values"]
    assert url[-2:] == [{"Get": "Steps.TuneDeepAR.TrainingJobSummaries[0].TrainingJobName"}, "output/model.tar.gz"]
    assert "/".join(url[1:3]) == job["OutputDataConfig"]["S3OutputPath"][len("s3://"):]


def test_property_file_and_gate(definition: dict) -> None:
    evaluate = next(s for s in definition["Steps"] if s["Name"] == "Evaluate")
    assert evaluate["PropertyFiles"] == [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation",
                                          "FilePath": "evaluation.json"}]
    outputs = [o["OutputName"] for o in evaluate["Arguments"]["ProcessingOutputConfig"]["Outputs"]]
    assert outputs == ["evaluation"]
    gate = next(s for s in definition["Steps"] if s["Name"] == "QualityGate")["Arguments"]
    paths = [c["LeftValue"]["Std:JsonGet"]["Path"] for c in gate["Conditions"]]
    assert paths == ["relative_mean_wQuantileLoss.value", "forecast_metrics.mean_wQuantileLoss.value"]
    failed = next(s for s in gate["ElseSteps"] if s["Name"] == "QualityGateFailed")["Arguments"]["ErrorMessage"]
    message = json.dumps(failed)
    for path in ("candidate.name", "best_baseline.name", "best_baseline.mean_wQuantileLoss.value",
                 "forecast_metrics.mean_wQuantileLoss.value", "relative_mean_wQuantileLoss.value"):
        assert f'"Path": "{path}"' in message, path
    register = gate["IfSteps"][0]["Arguments"]
    stats = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert stats["ContentType"] == "application/json"
    assert stats["S3Uri"]["Std:Join"]["Values"][-1] == "evaluation.json"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert register["ModelPackageGroupName"] == "aircast-deepar"
    deploy = gate["IfSteps"][1]
    assert deploy["FunctionArn"] == "arn:aws:lambda:eu-west-1:123456789012:function:aircast-deploy"
    assert deploy["Arguments"]["model_package_arn"] == {"Get": "Steps.RegisterModel.ModelPackageArn"}


def test_scripts_are_s3_uris_and_container_paths(definition: dict) -> None:
    for name, script in (("Preprocess", "processing/preprocess.py"), ("Evaluate", "evaluation/evaluate.py")):
        args = next(s for s in definition["Steps"] if s["Name"] == name)["Arguments"]
        code = [i for i in args["ProcessingInputs"] if i["InputName"] == "code"][0]["S3Input"]["S3Uri"]
        # the code's content version (pipelines/code.py): an execution reads the code it started with
        assert code == f"s3://aircast-artifacts/pipelines/aircast-deepar/code/{code_version()}/{script}"
        assert args["AppSpecification"]["ContainerEntrypoint"][-1].startswith("/opt/ml/processing/input/code/")
        container_args = [a for a in args["AppSpecification"]["ContainerArguments"] if isinstance(a, str)]
        assert all(a.startswith("/opt/ml/") for a in container_args if "/" in a)


def test_building_makes_no_aws_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.client

    from pipelines.aircast.pipeline import get_pipeline

    calls: list[str] = []

    def refuse(self, operation, params):  # noqa: ANN001
        calls.append(operation)
        raise AssertionError(f"AWS call {operation} while building the definition")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    text = get_pipeline(region="us-east-1", role=ROLE, default_bucket="b", default_bucket_prefix="p",
                        tags=[{"Key": "project", "Value": "aircast"}]).definition()
    assert calls == [] and '"Preprocess"' in text


def test_the_sdk_environment_is_lent_for_the_build_and_taken_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK needs a region to import and no IAM role validation to build offline; a caller's own values
    win, and what was added is gone after the block (importing or building changes nothing in the process)."""
    import os

    from pipelines.sdk import offline_sdk

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("SAGEMAKER_VALIDATE_ROLE", raising=False)
    with offline_sdk("us-east-1"):
        assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1" and os.environ["SAGEMAKER_VALIDATE_ROLE"] == "false"
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1" and "SAGEMAKER_VALIDATE_ROLE" not in os.environ
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(RuntimeError), offline_sdk("ap-south-1"):
        assert os.environ["AWS_DEFAULT_REGION"] == "ap-south-1"
        raise RuntimeError("a failed build gives the environment back too")
    assert "AWS_DEFAULT_REGION" not in os.environ and "SAGEMAKER_VALIDATE_ROLE" not in os.environ


def test_bad_arguments_are_clear() -> None:
    from pipelines.aircast.pipeline import get_pipeline
    from pipelines.definition import PipelineArgumentError, check_arguments

    with pytest.raises(PipelineArgumentError, match="does not accept colour; accepted arguments: region, role"):
        check_arguments(get_pipeline, {"region": "us-east-1", "role": ROLE, "colour": "red"})
    with pytest.raises(PipelineArgumentError, match="needs role"):
        check_arguments(get_pipeline, {"region": "us-east-1"})
    with pytest.raises(ValueError, match="IAM role ARN"):
        get_pipeline(region="us-east-1", role="not-a-role")


def test_console_scripts(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines import get_pipeline_definition, run_pipeline

    out = tmp_path / "definition.json"
    assert get_pipeline_definition.main(["--file-name", str(out), "--kwargs", json.dumps({"pipeline_name": "x"})]) == 0
    assert [s["Name"] for s in json.loads(out.read_text())["Steps"]][:2] == ["Preprocess", "TuneDeepAR"]
    assert get_pipeline_definition.main(["--kwargs", '{"nope": 1}']) == 2
    assert "does not accept nope; accepted arguments:" in capsys.readouterr().err
    assert run_pipeline.main(["--role-arn", ROLE, "--kwargs", '{"unknown_key": 1}']) == 2
    err = capsys.readouterr().err
    assert "does not accept unknown_key" in err and "model_package_group_name" in err and "Traceback" not in err


def test_aircast_pipeline_definition_command(settings, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from aircast.cli import main

    out = tmp_path / "def.json"
    assert main(["pipeline", "definition", "--output", str(out)]) == 0
    definition = json.loads(out.read_text())
    params = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert params["InputDataUri"] == f"s3://{settings.lake_bucket}/curated/hourly/"
    assert params["EndpointName"] == settings.endpoint_name
    assert main(["pipeline", "executions"]) == 1
    assert "does not exist yet" in capsys.readouterr().err
