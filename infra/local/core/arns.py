"""ARNs of the resources the emulator plays, one builder per kind, spelled as AWS spells them.

``arn:<partition>:<service>:<region>:<account>:<resource>``. The local emulator plays the ``aws``
partition. Case follows AWS: SageMaker lower-cases the resource name in the ARNs of the resources
it names after the caller (``CreateEndpoint`` ``"MyEndpoint"`` → ``...:endpoint/myendpoint``; the
same for endpoint configs, models, pipelines, training, processing and transform jobs), while
EventBridge rules, Lambda functions and CloudWatch alarms keep the name as given. Model package
(group) ARNs keep the group name's case here, as the local Model Registry has always answered.
"""

from __future__ import annotations

PARTITION = "aws"


def arn(service: str, region: str, account_id: str, resource: str) -> str:
    """``arn:aws:<service>:<region>:<account_id>:<resource>``."""
    return f"arn:{PARTITION}:{service}:{region}:{account_id}:{resource}"


def lambda_function_arn(region: str, account_id: str, name: str, qualifier: str | None = None) -> str:
    """``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]``."""
    base = arn("lambda", region, account_id, f"function:{name}")
    return f"{base}:{qualifier}" if qualifier else base


def events_rule_arn(region: str, account_id: str, name: str) -> str:
    """A rule of the default event bus: ``arn:aws:events:REGION:ACCOUNT:rule/NAME``."""
    return arn("events", region, account_id, f"rule/{name}")


def sagemaker_arn(region: str, account_id: str, kind: str, name: str) -> str:
    """A SageMaker resource named by the caller (``endpoint``, ``endpoint-config``, ``model``,
    ``pipeline``, ``training-job``...), its name lower-cased as SageMaker writes it."""
    return arn("sagemaker", region, account_id, f"{kind}/{name.lower()}")


def pipeline_arn(region: str, account_id: str, name: str) -> str:
    """``arn:aws:sagemaker:REGION:ACCOUNT:pipeline/<name, lower-cased>``."""
    return sagemaker_arn(region, account_id, "pipeline", name)


def pipeline_execution_arn(region: str, account_id: str, pipeline: str, execution_id: str) -> str:
    """``arn:aws:sagemaker:REGION:ACCOUNT:pipeline/<pipeline, lower-cased>/execution/<id>``."""
    return f"{pipeline_arn(region, account_id, pipeline)}/execution/{execution_id}"


def model_package_group_arn(region: str, account_id: str, group: str) -> str:
    """``arn:aws:sagemaker:REGION:ACCOUNT:model-package-group/GROUP``."""
    return arn("sagemaker", region, account_id, f"model-package-group/{group}")


def model_package_arn(region: str, account_id: str, group: str, version: int) -> str:
    """A versioned model package: ``arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION``."""
    return arn("sagemaker", region, account_id, f"model-package/{group}/{version}")


def cloudwatch_alarm_arn(region: str, account_id: str, name: str) -> str:
    """``arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME``."""
    return arn("cloudwatch", region, account_id, f"alarm:{name}")
