"""The aircast model-build pipeline, wired with the SageMaker Python SDK v3.

::

    Preprocess ─▶ TuneDeepAR ─▶ CreateModel ─▶ BatchForecast ─▶ Evaluate ─▶ QualityGate
                                                                             ├─ pass ─▶ RegisterModel ─▶ Deploy
                                                                             └─ fail ─▶ QualityGateFailed

Preprocess cuts three disjoint periods (train, validation, evaluation) and reads starting
hyperparameters and tuning ranges from the training period (its ``hyperparameters.json``
property file). TuneDeepAR runs Automatic Model Tuning over the built-in DeepAR's tunable
hyperparameters, objective ``test:mean_wQuantileLoss`` on the validation period (DeepAR's test
channel); the best training job's model goes on to CreateModel. Evaluate scores it and every
baseline on the evaluation windows, which no choice has seen; the gate compares it with the best
baseline.

``get_pipeline`` only wires steps. Every value an operator may want to change at
start time is a pipeline parameter (so ``start_pipeline_execution`` can override it);
scripts are referenced by S3 URI and uploaded by ``run-pipeline`` (see
:mod:`pipelines.code`), so building the definition makes no AWS call. Importing this module
imports no SDK and changes nothing in the process; ``get_pipeline`` imports the SDK with the
environment it needs offline for the duration of the build (:mod:`pipelines.sdk`).
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from pipelines.code import code_prefix_uri, script_uri
from pipelines.sdk import offline_sdk

if TYPE_CHECKING:  # the SDK itself is imported when a pipeline is built, not with this module
    from sagemaker.core.workflow.functions import JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow.pipeline import Pipeline

#: the processing image of Preprocess and Evaluate, as ``image_uris.retrieve`` arguments: AWS's AutoGluon 1.4.0
#: CPU container, Python 3.11 with numpy, pandas, pyarrow, statsforecast and matplotlib, so the job scripts
#: run with nothing installed at run time (docs/aws.md, "Images"; its manifest with sources:
#: infra/local/runtimes/sagemaker-autogluon-training-1.4.0-cpu-py311.json)
PROCESSING_IMAGE = {"framework": "autogluon", "version": "1.4.0", "py_version": "py311", "image_scope": "training",
                    "instance_type": "ml.m5.xlarge"}
#: where the processing steps mount the job packages (put on PYTHONPATH)
CONTAINER_LIB = "/opt/ml/processing/input/lib"
#: the evaluation report the quality gate and the model metrics read
EVALUATION_FILE = "evaluation.json"
#: DeepAR inference configuration for batch transform (SageMaker reads it from this env variable)
BATCH_INFERENCE_CONFIG = {"num_samples": 100, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]}
DEPLOY_FUNCTION_NAME = "aircast-deploy"
#: Preprocess's property file: starting hyperparameters and tuning ranges read from the training period
HYPERPARAMETERS_FILE = "hyperparameters.json"
#: the tuning objective: DeepAR's mean weighted quantile loss on its test channel (the validation period)
TUNING_OBJECTIVE = "test:mean_wQuantileLoss"
#: the built-in DeepAR's tunable hyperparameters (deepar-tuning) and whether each is an integer
TUNED_HYPERPARAMETERS = {"context_length": True, "epochs": True, "learning_rate": False, "num_cells": True,
                         "num_layers": True, "mini_batch_size": True, "dropout_rate": False,
                         "embedding_dimension": True}


@dataclass(frozen=True)
class PipelineParameters:
    """Every pipeline parameter, so steps and tests refer to them by attribute."""

    input_data_uri: ParameterString
    frequency: ParameterString
    prediction_length: ParameterInteger
    context_length: ParameterInteger
    num_eval_windows: ParameterInteger
    num_validation_windows: ParameterInteger
    pollutants: ParameterString
    epochs: ParameterInteger
    num_cells: ParameterInteger
    num_layers: ParameterInteger
    likelihood: ParameterString
    mini_batch_size: ParameterInteger
    learning_rate: ParameterFloat
    dropout_rate: ParameterFloat
    early_stopping_patience: ParameterInteger
    tuning_strategy: ParameterString
    max_tuning_jobs: ParameterInteger
    max_parallel_tuning_jobs: ParameterInteger
    relative_wql_threshold: ParameterFloat
    absolute_wql_threshold: ParameterFloat
    model_approval_status: ParameterString
    endpoint_name: ParameterString
    processing_instance_type: ParameterString
    training_instance_type: ParameterString
    transform_instance_type: ParameterString
    inference_instance_type: ParameterString

    def all(self) -> list:
        return [getattr(self, name) for name in self.__dataclass_fields__]


def make_parameters(input_data_uri: str, endpoint_name: str) -> PipelineParameters:
    """The pipeline's parameters with their defaults.

    ``ContextLength`` 0, ``Epochs`` 0 and ``Likelihood`` "auto" are read from the training period by
    Preprocess; ``Epochs`` ... ``DropoutRate`` are the starting values tuning searches around (chosen on the
    suite's validation periods, ``bench/forecast.py --suite``). ``MaxTuningJobs`` 1 trains the
    starting values once (no tuning); the default budget keeps 30 sensors x 4 months under
    5 minutes on 2 cores. ``MaxRelativeWQL`` compares with the best baseline.
    """
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

    from processing.data_profile import BASE_DEFAULTS as start

    return PipelineParameters(
        input_data_uri=ParameterString("InputDataUri", default_value=input_data_uri),
        frequency=ParameterString("Frequency", default_value="H"),
        prediction_length=ParameterInteger("PredictionLength", default_value=24),
        context_length=ParameterInteger("ContextLength", default_value=0),
        num_eval_windows=ParameterInteger("NumEvalWindows", default_value=7),
        num_validation_windows=ParameterInteger("NumValidationWindows", default_value=7),
        # comma-separated pollutants to model; empty = every pollutant in the curated table
        pollutants=ParameterString("Pollutants", default_value=""),
        # 0 = from the training history (processing.data_profile.starting_epochs), as ContextLength 0
        epochs=ParameterInteger("Epochs", default_value=0),
        num_cells=ParameterInteger("NumCells", default_value=start["num_cells"]),
        num_layers=ParameterInteger("NumLayers", default_value=start["num_layers"]),
        likelihood=ParameterString("Likelihood", default_value="auto"),
        mini_batch_size=ParameterInteger("MiniBatchSize", default_value=start["mini_batch_size"]),
        learning_rate=ParameterFloat("LearningRate", default_value=start["learning_rate"]),
        dropout_rate=ParameterFloat("DropoutRate", default_value=start["dropout_rate"]),
        early_stopping_patience=ParameterInteger("EarlyStoppingPatience", default_value=10),
        tuning_strategy=ParameterString("TuningStrategy", default_value="Bayesian", enum_values=["Bayesian", "Random"]),
        max_tuning_jobs=ParameterInteger("MaxTuningJobs", default_value=4),
        max_parallel_tuning_jobs=ParameterInteger("MaxParallelTuningJobs", default_value=2),
        relative_wql_threshold=ParameterFloat("MaxRelativeWQL", default_value=0.9),
        absolute_wql_threshold=ParameterFloat("MaxMeanWQL", default_value=1.0),
        model_approval_status=ParameterString("ModelApprovalStatus", default_value="PendingManualApproval",
                                              enum_values=["PendingManualApproval", "Approved", "Rejected"]),
        endpoint_name=ParameterString("EndpointName", default_value=endpoint_name),
        processing_instance_type=ParameterString("ProcessingInstanceType", default_value="ml.m5.xlarge"),
        training_instance_type=ParameterString("TrainingInstanceType", default_value="ml.c5.2xlarge"),
        transform_instance_type=ParameterString("TransformInstanceType", default_value="ml.m5.xlarge"),
        inference_instance_type=ParameterString("InferenceInstanceType", default_value="ml.m5.large"),
    )


def static_hyperparameters(p: PipelineParameters, likelihood: JsonGet) -> dict:
    """Built-in DeepAR hyperparameters every trial shares (its own names), strings as the API wants;
    the tuned ones come from the ranges."""
    return {
        "time_freq": p.frequency,
        "prediction_length": p.prediction_length.to_string(),
        "likelihood": likelihood,
        "early_stopping_patience": p.early_stopping_patience.to_string(),
        # the cat = [pollutant, thing] indices; "auto" lets DeepAR infer the cardinalities
        "cardinality": "auto",
        "test_quantiles": "[0.1, 0.5, 0.9]",
    }


_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
_FUNCTION_ARN = re.compile(r"arn:(aws[a-z-]*):lambda:([a-z0-9-]+):(\d{12}):function:([A-Za-z0-9_-]{1,64})(?::[\w$-]+)?")


def deploy_lambda_arn(region: str, role: str, function_name: str = DEPLOY_FUNCTION_NAME,
                      function_arn: str | None = None) -> str:
    """The ARN the Deploy step invokes.

    ``function_arn`` is the stack's ``DeployFunctionArn`` output; without it the ARN is built from the
    stack's ``DeployFunctionName`` parameter (``function_name``) in the role's partition and account.
    The function must be in the role's partition, account and region: the stack lets the pipeline
    invoke only its own deploy function there (``lambda:InvokeFunction`` in infra/aws/aircast.yaml).
    """
    m = _ROLE_ARN.fullmatch(role)
    if not m:
        raise ValueError(f"role must be an IAM role ARN (arn:<partition>:iam::<account>:role/<name>), got {role!r}")
    partition, account = m.groups()
    try:
        region_partition = boto3.Session().get_partition_for_region(region)
    except Exception as exc:  # noqa: BLE001 - botocore's UnknownRegionError and kin: a user's typo
        raise ValueError(f"unknown region {region!r}") from exc
    if region_partition != partition:
        raise ValueError(f"role {role} is in partition {partition!r} but region {region} is in {region_partition!r}")
    if not function_arn:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", function_name):
            raise ValueError(f"deploy_function_name must be a Lambda function name, got {function_name!r}")
        return f"arn:{partition}:lambda:{region}:{account}:function:{function_name}"
    f = _FUNCTION_ARN.fullmatch(function_arn)
    if not f:
        raise ValueError(f"deploy_function_arn must be a Lambda function ARN "
                         f"(arn:<partition>:lambda:<region>:<account>:function:<name>), got {function_arn!r}")
    if f.group(1, 2, 3) != (partition, region, account):
        raise ValueError(f"deploy_function_arn {function_arn} is not in the pipeline's partition, region and account "
                         f"({partition}, {region}, {account}): the stack lets the pipeline invoke only its own "
                         "deploy function")
    return function_arn


def tuning_step(name: str, step_args: Any, config: dict[str, Any]) -> Any:
    """A TuningStep whose ``HyperParameterTuningJobConfig`` fields ``config`` replaces.

    SDK v3 builds the request from pydantic shapes that accept only literals for the ranges,
    resource limits and strategy; SageMaker Pipelines itself takes parameters and ``JsonGet``
    there, so the built request's fields are replaced by those expressions.
    """
    from sagemaker.mlops.workflow.steps import TuningStep

    class PipelineTuningStep(TuningStep):
        @property
        def arguments(self) -> dict[str, Any]:
            request = super().arguments
            request["HyperParameterTuningJobConfig"].update(config)
            return request

    return PipelineTuningStep(name=name, step_args=step_args)


def deploy_step(name: str, lambda_func: Any, inputs: dict[str, Any], outputs: list[Any]) -> Any:
    """A LambdaStep invoking an existing function (the stack's deploy Lambda).

    The SDK warns on every ``definition()`` that it will not update the function's code, which is
    the intent here; that one warning is ignored where the step raises it.
    """
    from sagemaker.mlops.workflow.lambda_step import LambdaStep

    class DeployStep(LambdaStep):
        def to_request(self) -> dict[str, Any]:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Lambda function won't be updated")
                return super().to_request()

    return DeployStep(name=name, lambda_func=lambda_func, inputs=inputs, outputs=outputs)


def _quiet_sdk() -> None:
    """Building a definition must not call AWS, but SDK telemetry calls STS from a thread.

    The SDK's only opt-out is its config (SageMaker.PythonSDK.Modules.TelemetryOptOut), and a
    session carrying a config re-validates it against a JSON schema on every lookup (~80 per
    build, seconds each on a busy machine); so the sender is switched off instead. The SDK also
    logs every image lookup at INFO and every request field it drops from the definition at
    WARNING (job names are set at execution time, as intended); a CLI user needs none of it.
    """
    from sagemaker.core.telemetry import telemetry_logging

    telemetry_logging._send_telemetry_request = lambda *args, **kwargs: None
    logging.getLogger("sagemaker").setLevel(logging.ERROR)


def get_session(region: str, default_bucket: str, default_bucket_prefix: str) -> PipelineSession:
    """A PipelineSession that captures step requests without calling AWS (no telemetry, fixed bucket)."""
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    _quiet_sdk()
    session = PipelineSession(
        boto_session=boto3.Session(region_name=region),
        default_bucket=default_bucket,
        default_bucket_prefix=default_bucket_prefix or None,
    )
    # The SDK checks (and may create) the default bucket on first use; the bucket is
    # given, so record it as already resolved and keep definition building offline.
    session._default_bucket = default_bucket
    return session


def get_pipeline(
    region: str,
    role: str,
    default_bucket: str = "aircast-artifacts",
    default_bucket_prefix: str = "pipelines/aircast-deepar",
    pipeline_name: str = "aircast-deepar",
    model_package_group_name: str = "aircast-deepar",
    base_job_prefix: str = "aircast",
    input_data_uri: str = "s3://aircast-lake/curated/hourly/",
    endpoint_name: str = "aircast-forecast",
    deploy_function_arn: str | None = None,
    tags: list[dict[str, str]] | None = None,
    deploy_function_name: str = DEPLOY_FUNCTION_NAME,
) -> Pipeline:
    """Build the aircast DeepAR pipeline (no AWS call is made).

    Parameters
    ----------
    region, role:
        AWS region and the SageMaker execution role ARN (its account names the deploy Lambda).
    default_bucket, default_bucket_prefix:
        Where job outputs go (``s3://bucket/prefix/<execution id>/...``) and where the CLI
        uploads the job scripts (``s3://bucket/prefix/code/<content version>/``, :mod:`pipelines.code`).
    pipeline_name, model_package_group_name, base_job_prefix:
        Names of the pipeline, the Model Registry group and the jobs' name prefix.
    input_data_uri, endpoint_name:
        Defaults of the ``InputDataUri`` and ``EndpointName`` parameters.
    deploy_function_arn, deploy_function_name:
        The deploy Lambda: the stack's ``DeployFunctionArn`` output, or else its ``DeployFunctionName``
        parameter (default ``aircast-deploy``) in the role's partition, account and region.
    tags:
        Project tags ``[{"Key": ..., "Value": ...}]`` put on every job.
    """
    with offline_sdk(region), warnings.catch_warnings():
        # "Running within a PipelineSession, there will be No Wait..." for every step: expected here
        warnings.simplefilter("ignore", UserWarning)
        function_arn = deploy_lambda_arn(region, role, deploy_function_name, deploy_function_arn)
        return _build(region, role, default_bucket, default_bucket_prefix, pipeline_name, model_package_group_name,
                      base_job_prefix, input_data_uri, endpoint_name, function_arn, tags)


def _build(region: str, role: str, default_bucket: str, default_bucket_prefix: str, pipeline_name: str,
           model_package_group_name: str, base_job_prefix: str, input_data_uri: str, endpoint_name: str,
           deploy_function_arn: str, tags: list[dict[str, str]] | None) -> Pipeline:
    from sagemaker.core import image_uris
    from sagemaker.core.lambda_helper import Lambda
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.parameter import ContinuousParameter, IntegerParameter
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output, Tag
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, StoppingCondition
    from sagemaker.core.transformer import Transformer
    from sagemaker.core.workflow.conditions import ConditionLessThan, ConditionLessThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep, TransformStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train import ModelTrainer
    from sagemaker.train.tuner import HyperparameterTuner

    session = get_session(region, default_bucket, default_bucket_prefix)
    p = make_parameters(input_data_uri, endpoint_name)
    tags = list(tags or [])
    for tag in tags:
        if not isinstance(tag, dict) or set(tag) != {"Key", "Value"}:
            raise ValueError(f'tags must be [{{"Key": ..., "Value": ...}}], got {tag!r}')
    base = f"s3://{default_bucket}/{default_bucket_prefix.strip('/')}" if default_bucket_prefix.strip("/") \
        else f"s3://{default_bucket}"

    def run_uri(*parts: str) -> Join:
        # per-execution output folder, so runs never overwrite each other
        return Join(on="/", values=[base, ExecutionVariables.PIPELINE_EXECUTION_ID, *parts])

    try:
        processing_image = image_uris.retrieve(region=region, **PROCESSING_IMAGE)
    except ValueError as exc:  # AWS does not offer the AutoGluon container in every region
        raise ValueError(f"the processing image (AWS's AutoGluon {PROCESSING_IMAGE['version']} container) is not "
                         f"offered in {region}: {exc}") from exc
    deepar_image = image_uris.retrieve("forecasting-deepar", region)
    lib_input = ProcessingInput(
        input_name="lib",
        s3_input=ProcessingS3Input(s3_uri=code_prefix_uri(default_bucket, default_bucket_prefix),
                                   local_path=CONTAINER_LIB, s3_data_type="S3Prefix", s3_input_mode="File"),
    )

    def processor(job: str) -> ScriptProcessor:
        return ScriptProcessor(
            role=role, image_uri=processing_image, command=["python3"], instance_count=1,
            instance_type=p.processing_instance_type, base_job_name=f"{base_job_prefix}-{job}",
            sagemaker_session=session, env={"PYTHONPATH": CONTAINER_LIB}, tags=tags,
        )

    def s3_in(name: str, uri, local: str) -> ProcessingInput:
        return ProcessingInput(input_name=name, s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File"))

    def s3_out(name: str, local: str, *uri_parts: str) -> ProcessingOutput:
        return ProcessingOutput(output_name=name, s3_output=ProcessingS3Output(
            s3_uri=run_uri(*uri_parts), local_path=local, s3_upload_mode="EndOfJob"))

    # ---- Preprocess: curated hourly parquet → DeepAR JSON lines in three periods + starting hyperparameters
    out = "/opt/ml/processing/output"
    profile_report = PropertyFile(name="Hyperparameters", output_name="metadata", path=HYPERPARAMETERS_FILE)
    step_preprocess = ProcessingStep(
        name="Preprocess",
        step_args=processor("preprocess").run(
            code=script_uri(default_bucket, default_bucket_prefix, "processing", "preprocess.py"),
            inputs=[s3_in("hourly", p.input_data_uri, "/opt/ml/processing/input/hourly"), lib_input],
            outputs=[
                s3_out("train", f"{out}/train", "preprocess", "train"),
                s3_out("test", f"{out}/test", "preprocess", "test"),
                s3_out("validation", f"{out}/validation", "preprocess", "validation"),
                s3_out("evaluation", f"{out}/evaluation", "preprocess", "evaluation"),
                s3_out("metadata", f"{out}/metadata", "preprocess", "metadata"),
            ],
            arguments=[
                "--input-dir", "/opt/ml/processing/input/hourly",
                "--output-dir", out,
                "--freq", p.frequency,
                "--prediction-length", p.prediction_length.to_string(),
                "--context-length", p.context_length.to_string(),
                "--num-windows", p.num_eval_windows.to_string(),
                "--validation-windows", p.num_validation_windows.to_string(),
                "--likelihood", p.likelihood,
                "--epochs", p.epochs.to_string(),
                "--learning-rate", p.learning_rate.to_string(),
                "--num-cells", p.num_cells.to_string(),
                "--num-layers", p.num_layers.to_string(),
                "--mini-batch-size", p.mini_batch_size.to_string(),
                "--dropout-rate", p.dropout_rate.to_string(),
                # one "--pollutants=..." token: an empty value stays a valid, non-empty container argument
                Join(on="=", values=["--pollutants", p.pollutants]),
            ],
        ),
        property_files=[profile_report],
    )
    preprocess_outputs = step_preprocess.properties.ProcessingOutputConfig.Outputs

    def profile(path: str) -> JsonGet:
        return JsonGet(step_name=step_preprocess.name, property_file=profile_report, json_path=path)

    # ---- TuneDeepAR: Automatic Model Tuning of the built-in algorithm; the test channel is the validation period
    models_prefix = f"{default_bucket_prefix.strip('/')}/models".lstrip("/")
    trainer = ModelTrainer(
        training_image=deepar_image, role=role, sagemaker_session=session,
        base_job_name=f"{base_job_prefix}-deepar",
        compute=Compute(instance_type=p.training_instance_type, instance_count=1),
        hyperparameters=static_hyperparameters(p, profile("start.likelihood")),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{default_bucket}/{models_prefix}"),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=3600),
        tags=[Tag(key=t["Key"], value=t["Value"]) for t in tags] or None,
    )

    # SDK v3's request shapes take only literal ranges, limits and strategy; the step then puts the
    # pipeline's own values (parameters, Preprocess's property file) in their place
    tuner = HyperparameterTuner(
        model_trainer=trainer, objective_metric_name=TUNING_OBJECTIVE, objective_type="Minimize",
        hyperparameter_ranges={name: IntegerParameter(1, 2) if integer else ContinuousParameter(0.0, 1.0)
                               for name, integer in TUNED_HYPERPARAMETERS.items()},
        strategy="Bayesian", max_jobs=1, max_parallel_jobs=1,
        base_tuning_job_name=f"{base_job_prefix}-deepar", tags=tags or None,
    )
    ranges: dict[str, list] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": []}
    for name, integer in TUNED_HYPERPARAMETERS.items():
        ranges["IntegerParameterRanges" if integer else "ContinuousParameterRanges"].append({
            "Name": name,
            "MinValue": Join(on="", values=[profile(f"ranges.{name}.MinValue")]),
            "MaxValue": Join(on="", values=[profile(f"ranges.{name}.MaxValue")]),
            "ScalingType": profile(f"ranges.{name}.ScalingType"),
        })
    step_tune = tuning_step(
        name="TuneDeepAR",
        step_args=tuner.tune(inputs=[
            InputData(channel_name="train", data_source=preprocess_outputs["train"].S3Output.S3Uri, content_type="json"),
            InputData(channel_name="test", data_source=preprocess_outputs["test"].S3Output.S3Uri, content_type="json"),
        ]),
        config={"Strategy": p.tuning_strategy, "ParameterRanges": ranges,
                "ResourceLimits": {"MaxNumberOfTrainingJobs": p.max_tuning_jobs,
                                   "MaxParallelTrainingJobs": p.max_parallel_tuning_jobs}},
    )
    # the best training job (index 0) of the tuning job: <models>/<training job>/output/model.tar.gz
    best_model_uri = step_tune.get_top_model_s3_uri(top_k=0, s3_bucket=default_bucket, prefix=f"{models_prefix}")
    best_job = step_tune.properties.BestTrainingJob

    # ---- CreateModel: the best trained artifact in the DeepAR serving image
    model_env = {"DEEPAR_INFERENCE_CONFIG": json.dumps(BATCH_INFERENCE_CONFIG)}
    model = ModelBuilder(
        image_uri=deepar_image, s3_model_data_url=best_model_uri,
        role_arn=role, sagemaker_session=session, env_vars=model_env,
    )
    step_create_model = ModelStep(name="CreateModel", step_args=model.build())

    # ---- BatchForecast: forecasts for every evaluation window (one JSON line per instance)
    transformer = Transformer(
        model_name=step_create_model.properties.ModelName, instance_count=1,
        instance_type=p.transform_instance_type, strategy="MultiRecord", assemble_with="Line",
        accept="application/jsonlines", output_path=run_uri("batch-forecast"),
        env=model_env, base_transform_job_name=f"{base_job_prefix}-forecast", sagemaker_session=session,
        tags=tags or None,
    )
    step_transform = TransformStep(
        name="BatchForecast",
        step_args=transformer.transform(
            data=Join(on="/", values=[preprocess_outputs["evaluation"].S3Output.S3Uri, "windows.jsonl"]),
            data_type="S3Prefix", content_type="application/jsonlines", split_type="Line",
        ),
    )

    # ---- Evaluate: model vs probabilistic seasonal naive on the same windows → evaluation.json
    evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path=EVALUATION_FILE)
    step_evaluate = ProcessingStep(
        name="Evaluate",
        step_args=processor("evaluate").run(
            code=script_uri(default_bucket, default_bucket_prefix, "evaluation", "evaluate.py"),
            inputs=[
                s3_in("forecast", step_transform.properties.TransformOutput.S3OutputPath,
                      "/opt/ml/processing/input/forecast"),
                s3_in("evaluation", preprocess_outputs["evaluation"].S3Output.S3Uri,
                      "/opt/ml/processing/input/evaluation"),
                s3_in("validation", preprocess_outputs["validation"].S3Output.S3Uri,
                      "/opt/ml/processing/input/validation"),
                s3_in("metadata", preprocess_outputs["metadata"].S3Output.S3Uri, "/opt/ml/processing/input/metadata"),
                lib_input,
            ],
            outputs=[s3_out("evaluation", f"{out}/evaluation", "evaluation")],
            arguments=[
                "--forecast-dir", "/opt/ml/processing/input/forecast",
                "--evaluation-dir", "/opt/ml/processing/input/evaluation",
                "--validation-dir", "/opt/ml/processing/input/validation",
                "--candidate", Join(on="", values=["DeepAR training job ", best_job.TrainingJobName]),
                "--metadata-dir", "/opt/ml/processing/input/metadata",
                "--output-dir", f"{out}/evaluation",
            ],
        ),
        property_files=[evaluation_report],
    )

    def metric(path: str) -> JsonGet:
        return JsonGet(step_name=step_evaluate.name, property_file=evaluation_report, json_path=path)

    model_wql = metric("forecast_metrics.mean_wQuantileLoss.value")
    relative_wql = metric("relative_mean_wQuantileLoss.value")
    baseline_wql = metric("best_baseline.mean_wQuantileLoss.value")
    baseline_name = metric("best_baseline.name")
    candidate_name = metric("candidate.name")

    # ---- RegisterModel: versioned package with the evaluation report as its model quality metrics
    evaluation_uri = Join(on="/", values=[
        step_evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, EVALUATION_FILE])
    register_builder = ModelBuilder(
        image_uri=deepar_image, s3_model_data_url=best_model_uri,
        role_arn=role, sagemaker_session=session, env_vars=model_env,
    )
    step_register = ModelStep(
        name="RegisterModel",
        step_args=register_builder.register(
            model_package_group_name=model_package_group_name,
            content_types=["application/json"],
            response_types=["application/json"],
            inference_instances=[p.inference_instance_type],
            transform_instances=[p.transform_instance_type],
            approval_status=p.model_approval_status,
            model_metrics=ModelMetrics(model_statistics=MetricsSource(
                content_type="application/json", s3_uri=evaluation_uri)),
            # strings, as the API wants; `aircast models list` shows them
            customer_metadata_properties={
                "mean_wQuantileLoss": Join(on="", values=[model_wql]),
                "relative_mean_wQuantileLoss": Join(on="", values=[relative_wql]),
                "best_baseline": Join(on="", values=[baseline_name]),
                "training_job": best_job.TrainingJobName,
                "pipeline_execution_id": ExecutionVariables.PIPELINE_EXECUTION_ID,
            },
        ),
    )

    # ---- Deploy: the deploy Lambda acts only on an Approved package
    step_deploy = deploy_step(
        name="Deploy",
        lambda_func=Lambda(function_arn=deploy_function_arn, session=session),
        inputs={"model_package_arn": step_register.properties.ModelPackageArn, "endpoint_name": p.endpoint_name},
        outputs=[LambdaOutput(output_name="status", output_type=LambdaOutputTypeEnum.String)],
    )

    step_gate_failed = FailStep(
        name="QualityGateFailed",
        error_message=Join(on="", values=[
            "quality gate failed: best candidate ", candidate_name, " mean wQL ", model_wql, " vs best baseline ",
            baseline_name, " mean wQL ", baseline_wql, " (ratio ", relative_wql, "); required ratio <= ",
            p.relative_wql_threshold, " and mean wQL < ", p.absolute_wql_threshold, "; nothing registered",
        ]),
    )
    step_gate = ConditionStep(
        name="QualityGate",
        conditions=[
            ConditionLessThanOrEqualTo(left=relative_wql, right=p.relative_wql_threshold),
            ConditionLessThan(left=model_wql, right=p.absolute_wql_threshold),
        ],
        if_steps=[step_register, step_deploy],
        else_steps=[step_gate_failed],
    )

    return Pipeline(
        name=pipeline_name,
        parameters=p.all(),
        steps=[step_preprocess, step_tune, step_create_model, step_transform, step_evaluate, step_gate],
        sagemaker_session=session,
    )
