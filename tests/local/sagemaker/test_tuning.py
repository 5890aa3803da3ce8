"""Local Automatic Model Tuning: AWS's request rules, real DeepAR trials, best-job selection, AWS's response shapes."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.client import LocalSageMakerClient
from infra.local.sagemaker.tuning import centre, parameter_space
from tests.forecast.test_deepar_training import write_channels
from tests.helpers import wait_until

IMAGE = "522234722520.dkr.ecr.us-east-1.amazonaws.com/forecasting-deepar:1"
STATIC = {"time_freq": "H", "prediction_length": "6", "likelihood": "negative-binomial", "num_layers": "1",
          "mini_batch_size": "8", "num_eval_samples": "20", "test_quantiles": "[0.1, 0.5, 0.9]"}


def request(bucket_uri: str, **config: Any) -> dict[str, Any]:
    """A CreateHyperParameterTuningJob request for tiny DeepAR trials."""
    base: dict[str, Any] = {
        "HyperParameterTuningJobName": "tiny-tuning",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random", "RandomSeed": 7,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "test:mean_wQuantileLoss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {
                "IntegerParameterRanges": [
                    {"Name": "context_length", "MinValue": "6", "MaxValue": "24", "ScalingType": "Logarithmic"},
                    {"Name": "epochs", "MinValue": "1", "MaxValue": "1", "ScalingType": "Linear"},
                    {"Name": "num_cells", "MinValue": "4", "MaxValue": "16", "ScalingType": "Logarithmic"}],
                "ContinuousParameterRanges": [
                    {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.01", "ScalingType": "Logarithmic"}],
            },
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::000000000000:role/sagemaker",
            "StaticHyperParameters": dict(STATIC),
            "InputDataConfig": [
                {"ChannelName": name, "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": f"{bucket_uri}/{name}", "S3DataDistributionType": "FullyReplicated"}}}
                for name in ("train", "test")],
            "OutputDataConfig": {"S3OutputPath": f"{bucket_uri}/models"},
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }
    base["HyperParameterTuningJobConfig"].update(config)
    return base


def check_shape(value: Any, shape: Any, where: str) -> None:
    """``value`` fits botocore's output shape: required members present, no unknown member, types match."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), where
        missing = [m for m in shape.required_members if m not in value]
        assert not missing, f"{where}: missing {missing}"
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{where}: not in the API's shape: {unknown}"
        for name, member in value.items():
            check_shape(member, shape.members[name], f"{where}.{name}")
    elif kind == "list":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            check_shape(item, shape.member, f"{where}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), where
        for k, v in value.items():
            check_shape(v, shape.value, f"{where}[{k}]")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: {value!r}"
        if shape.enum:
            assert value in shape.enum, f"{where}: {value!r} not in {shape.enum}"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r}"
    elif kind in ("float", "double"):
        assert isinstance(value, (int, float)), f"{where}: {value!r}"
    elif kind == "timestamp":
        assert isinstance(value, dt.datetime), f"{where}: {value!r}"
    elif kind == "boolean":
        assert isinstance(value, bool), where


def output_shape(operation: str) -> Any:
    return botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).output_shape


@pytest.fixture
def tuner(settings) -> tuple[LocalSageMakerClient, str]:
    bucket = settings.s3_root / "aircast-artifacts"
    write_channels(bucket, n_series=3, hours=96)
    return LocalSageMakerClient(settings.local_config()), "s3://aircast-artifacts"


def wait_for(client: LocalSageMakerClient, name: str, timeout: float = 300) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        desc = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        return desc if desc["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped") else None

    return wait_until(ended, timeout, interval_s=0.5, what=f"tuning job {name} to end")


@pytest.mark.slow
def test_trials_best_job_and_aws_shapes(tuner, settings) -> None:
    client, uri = tuner
    req = request(uri)
    arn = client.create_hyper_parameter_tuning_job(**req)["HyperParameterTuningJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:hyper-parameter-tuning-job/tiny-tuning"
    desc = wait_for(client, "tiny-tuning")
    check_shape(desc, output_shape("DescribeHyperParameterTuningJob"), "Describe")
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["TrainingJobStatusCounters"]["Completed"] == 2 and desc["ObjectiveStatusCounters"]["Succeeded"] == 2

    listed = client.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="tiny-tuning")
    check_shape(listed, output_shape("ListTrainingJobsForHyperParameterTuningJob"), "List")
    jobs = listed["TrainingJobSummaries"]
    assert [j["TrainingJobName"].rsplit("-", 2)[0] for j in jobs] == ["tiny-tuning", "tiny-tuning"]
    assert [j["TrainingJobName"].rsplit("-", 2)[1] for j in jobs] == ["001", "002"]
    # the first trial is the ranges' centres (geometric for Logarithmic): a budget of one trains the start
    space = parameter_space(req["HyperParameterTuningJobConfig"]["ParameterRanges"])
    assert jobs[0]["TunedHyperParameters"] == {p["name"]: str(centre(p)) for p in space}
    assert jobs[0]["TunedHyperParameters"]["context_length"] == "12"
    assert set(jobs[1]["TunedHyperParameters"]) == {"context_length", "epochs", "num_cells", "learning_rate"}
    values = {j["TrainingJobName"]: j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in jobs}
    best = min(values, key=values.get)
    assert desc["BestTrainingJob"]["TrainingJobName"] == best
    ordered = client.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tiny-tuning", SortBy="FinalObjectiveMetricValue", SortOrder="Ascending")
    assert ordered["TrainingJobSummaries"][0]["TrainingJobName"] == best
    page = client.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="tiny-tuning",
                                                                    MaxResults=1)
    assert len(page["TrainingJobSummaries"]) == 1 and page["NextToken"]

    # each trial is a training job with its model where SageMaker puts it, and the tuned values applied
    trial = client.describe_training_job(TrainingJobName=best)
    check_shape(trial, output_shape("DescribeTrainingJob"), "DescribeTrainingJob")
    assert trial["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://aircast-artifacts/models/{best}/output/model.tar.gz"
    assert (settings.s3_root / "aircast-artifacts" / "models" / best / "output" / "model.tar.gz").is_file()
    assert trial["HyperParameters"]["likelihood"] == "negative-binomial"
    assert {m["MetricName"] for m in trial["FinalMetricDataList"]} >= {"test:mean_wQuantileLoss", "test:RMSE"}

    with pytest.raises(ClientError) as info:
        client.create_hyper_parameter_tuning_job(**req)
    assert info.value.response["Error"]["Code"] == "ResourceInUse"


def _change(req: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(req)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()
RANGES = "HyperParameterTuningJobConfig.ParameterRanges"
BAD = [
    ("HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.MetricName", "validation:rmse",
     "ValidationException", "not valid for the [forecasting-deepar] algorithm"),
    ("HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.Type", "Maximize",
     "ValidationException", "objective metric type, [Maximize]"),
    ("TrainingJobDefinition.InputDataConfig", [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://aircast-artifacts/train"}}}],
     "ValidationException", "computed on the 'test' channel"),
    (f"{RANGES}.CategoricalParameterRanges", [{"Name": "likelihood", "Values": ["gaussian", "student-T"]}],
     "ValidationException", "likelihood is not tunable"),
    ("TrainingJobDefinition.StaticHyperParameters.epochs", "3", "ValidationException", "both static and tunable"),
    (f"{RANGES}.IntegerParameterRanges.2.MinValue", "0", "ValidationException", "num_cells"),
    (f"{RANGES}.ContinuousParameterRanges.0.MinValue", "0", "ValidationException", "Logarithmic scaling"),
    (f"{RANGES}.IntegerParameterRanges.0.MinValue", "30", "ValidationException", "greater than MaxValue"),
    ("HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs", 0, "ValidationException",
     "MaxNumberOfTrainingJobs"),
    ("HyperParameterTuningJobConfig.ResourceLimits.MaxParallelTrainingJobs", 0, "ValidationException",
     "MaxParallelTrainingJobs"),
    ("HyperParameterTuningJobConfig.ResourceLimits.MaxParallelTrainingJobs", 4096, "ResourceLimitExceeded",
     "MaxParallelTrainingJobs=4096"),
    ("HyperParameterTuningJobConfig.Strategy", "Grid", "ValidationException", "not supported by the local tuner"),
    ("HyperParameterTuningJobConfig.Strategy", "Smart", "ValidationException", "Strategy"),
    ("HyperParameterTuningJobName", "no_underscores_allowed", "ValidationException", "regular expression pattern"),
    ("TrainingJobDefinition.AlgorithmSpecification.TrainingImage",
     "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", "ValidationException",
     "no manifest"),
    ("TrainingJobDefinition.AlgorithmSpecification.TrainingImage",
     "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3", "ValidationException",
     "only the built-in DeepAR"),
]


@pytest.mark.parametrize(("path", "value", "code", "message"), BAD, ids=[b[3] for b in BAD])
def test_requests_aws_refuses_are_refused(tuner, path: str, value: Any, code: str, message: str) -> None:
    client, uri = tuner
    with pytest.raises(ClientError) as info:
        client.create_hyper_parameter_tuning_job(**_change(request(uri), path, value))
    assert info.value.response["Error"]["Code"] == code
    assert message in info.value.response["Error"]["Message"]
    # nothing was recorded
    with pytest.raises(ClientError) as missing:
        client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tiny-tuning")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"


@pytest.mark.slow
def test_failed_trials_fail_the_job_with_the_first_reason(settings, tmp_path: Path) -> None:
    client = LocalSageMakerClient(settings.local_config())
    (settings.s3_root / "aircast-artifacts" / "train").mkdir(parents=True)
    (settings.s3_root / "aircast-artifacts" / "test").mkdir(parents=True)
    bad = json.dumps({"start": "2021-01-01 00:00:00", "target": [-1.0] * 60}) + "\n"
    (settings.s3_root / "aircast-artifacts" / "train" / "t.json").write_text(bad)
    (settings.s3_root / "aircast-artifacts" / "test" / "t.json").write_text(bad)
    client.create_hyper_parameter_tuning_job(**_change(request("s3://aircast-artifacts"), "HyperParameterTuningJobConfig.ResourceLimits."
                                                       "MaxNumberOfTrainingJobs", 1))
    desc = wait_for(client, "tiny-tuning")
    assert desc["HyperParameterTuningJobStatus"] == "Failed"
    assert "All training jobs failed" in desc["FailureReason"] and "non-negative targets" in desc["FailureReason"]
    assert "BestTrainingJob" not in desc and desc["TrainingJobStatusCounters"]["NonRetryableError"] == 1
