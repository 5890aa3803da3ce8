"""Resources a deleted stack left behind on purpose, and how ``deploy-stack`` takes them back.

The template keeps the lake and artifacts buckets and the Model Package Group when the stack is
deleted (``DeletionPolicy: Retain``): they hold the data and the audit trail. Their names are
fixed per account and region, so creating the stack again would fail on them ("already exists").
``deploy-stack`` therefore looks for them first and, when some exist, creates the stack from them
with a CloudFormation resource import (an ``IMPORT`` change set holding only those resources,
CloudFormation User Guide, "Create a stack from existing resources"), then updates it with the full
template. CloudFormation's automatic import (``ImportExistingResources``) cannot do this: it takes
only resources whose names are static strings in the template, and these names are built from the
account and region.

Pure functions find the resources' names in the template (:func:`evaluate` resolves the few
intrinsic functions name properties use); :func:`existing_retained` asks S3 and SageMaker which
of them exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

PSEUDO = ("AWS::AccountId", "AWS::Region", "AWS::Partition", "AWS::URLSuffix", "AWS::StackName")


class RetainedResourceError(RuntimeError):
    """A retained resource cannot be adopted; the message says why and what to do."""


# ------------------------------------------------------------------ intrinsic functions of name properties
def evaluate(value: Any, values: Mapping[str, Any], conditions: Mapping[str, Any]) -> Any:
    """The value of a template expression, given parameter and pseudo-parameter ``values``.

    Handles what resource names are built with: ``Ref``, ``Fn::Sub`` (both forms), ``Fn::Join``,
    ``Fn::If`` (with ``Fn::Equals``/``Not``/``And``/``Or``/``Condition`` conditions), ``Fn::Split``,
    ``Fn::Select``. Anything else (``Fn::GetAtt``, imports) cannot be known before the stack exists:
    ``ValueError``.
    """
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [evaluate(v, values, conditions) for v in value]
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"not an expression: {value!r}")
    (fn, arg), = value.items()
    if fn == "Ref":
        if arg not in values:
            raise ValueError(f"Ref {arg} is not a parameter or pseudo parameter")
        return values[arg]
    if fn == "Fn::Sub":
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        scope = {**values, **{k: evaluate(v, values, conditions) for k, v in local.items()}}
        return _substitute(text, scope)
    if fn == "Fn::Join":
        sep, parts = arg
        return sep.join(str(p) for p in evaluate(parts, values, conditions))
    if fn == "Fn::Split":
        sep, text = arg
        return str(evaluate(text, values, conditions)).split(sep)
    if fn == "Fn::Select":
        index, items = arg
        return evaluate(items, values, conditions)[int(evaluate(index, values, conditions))]
    if fn == "Fn::If":
        name, if_true, if_false = arg
        return evaluate(if_true if condition(name, values, conditions) else if_false, values, conditions)
    raise ValueError(f"{fn} cannot be evaluated before the stack exists")


def condition(name: str, values: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    """Whether the template's condition ``name`` holds for ``values``."""
    return _truth(conditions[name], values, conditions)


def _truth(expr: Any, values: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    (fn, arg), = expr.items()
    if fn == "Fn::Equals":
        a, b = (evaluate(x, values, conditions) for x in arg)
        return str(a) == str(b)
    if fn == "Fn::Not":
        return not _truth(arg[0], values, conditions)
    if fn == "Fn::And":
        return all(_truth(x, values, conditions) for x in arg)
    if fn == "Fn::Or":
        return any(_truth(x, values, conditions) for x in arg)
    if fn == "Condition":
        return condition(arg, values, conditions)
    raise ValueError(f"{fn} is not a condition function")


def _substitute(text: str, scope: Mapping[str, Any]) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("${!", i):  # ${!Literal} stands for the text ${Literal}
            end = text.index("}", i)
            out.append("${" + text[i + 3:end] + "}")
            i = end + 1
        elif text.startswith("${", i):
            end = text.index("}", i)
            name = text[i + 2:end]
            if name not in scope:
                raise ValueError(f"${{{name}}} is not a parameter or pseudo parameter")
            out.append(str(scope[name]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parameter_values(template: Mapping[str, Any], parameters: Mapping[str, str], *, account_id: str,
                     region: str, stack_name: str) -> dict[str, Any]:
    """Every parameter's value (given, else its default) plus the pseudo parameters of the stack."""
    values: dict[str, Any] = {k: spec.get("Default") for k, spec in template.get("Parameters", {}).items()}
    values.update(parameters)
    values.update({"AWS::AccountId": account_id, "AWS::Region": region, "AWS::Partition": partition(region),
                   "AWS::URLSuffix": "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com",
                   "AWS::StackName": stack_name})
    return values


def partition(region: str) -> str:
    """The ARN partition of a region."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


# ------------------------------------------------------------------ what is retained and how it comes back
@dataclass(frozen=True)
class Adopter:
    """How a retained resource type is found and named for ``ResourcesToImport``."""

    name_property: str  # the template property holding its name
    identifier: str  # the type's primary identifier (its CloudFormation resource schema)
    exists: Callable[[Mapping[str, Any], str], bool]  # (clients, name) → does it exist in this account?
    to_identifier: Callable[[str, Mapping[str, Any]], str]  # (name, values) → identifier value


def _bucket_exists(clients: Mapping[str, Any], name: str) -> bool:
    try:
        clients["s3"].head_bucket(Bucket=name)
        return True
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied", "Forbidden"):
            raise RetainedResourceError(
                f"bucket {name} exists but this account cannot use it (bucket names are global: another account "
                "owns it?); choose another name with --parameter LakeBucketName=... / ArtifactsBucketName=...") from exc
        raise


def _model_package_group_exists(clients: Mapping[str, Any], name: str) -> bool:
    try:
        clients["sagemaker"].describe_model_package_group(ModelPackageGroupName=name)
        return True
    except ClientError as exc:
        if "does not exist" in str(exc) or exc.response.get("Error", {}).get("Code") == "ResourceNotFound":
            return False
        raise


#: every resource type the template retains, and how deploy-stack adopts it (tests/aws/test_retained.py
#: checks each retained type is here and that ``identifier`` is the type's primary identifier)
ADOPTERS: dict[str, Adopter] = {
    "AWS::S3::Bucket": Adopter("BucketName", "BucketName", _bucket_exists, lambda name, values: name),
    "AWS::SageMaker::ModelPackageGroup": Adopter(
        "ModelPackageGroupName", "ModelPackageGroupArn", _model_package_group_exists,
        lambda name, v: (f"arn:{v['AWS::Partition']}:sagemaker:{v['AWS::Region']}:{v['AWS::AccountId']}"
                         f":model-package-group/{name}")),
}


#: retained resources a stack refers to through a parameter instead of owning them: IAM holds one
#: GitHub OIDC provider per account, which stacks in other regions may use; deploy-stack finds it
#: (:func:`github_oidc_provider`) and passes it, so the stack does not create a second one
REFERENCED: dict[str, str] = {"AWS::IAM::OIDCProvider": "GitHubOidcProviderArn"}
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


def github_oidc_provider(iam: Any, cfn: Any, stack_name: str) -> str | None:
    """ARN of the account's GitHub OIDC provider when it exists and ``stack_name`` does not manage it."""
    try:
        cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId="GitHubOidcProvider")
        return None  # this stack created it: keep managing it
    except ClientError:
        pass  # no such stack, or the stack does not hold the provider
    for provider in iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", []):
        if provider["Arn"].endswith(f":oidc-provider/{GITHUB_OIDC_HOST}"):
            return str(provider["Arn"])
    return None


@dataclass(frozen=True)
class RetainedResource:
    """A resource of the template that outlives its stack."""

    logical_id: str
    resource_type: str
    name: str

    def to_import(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """This resource as an item of CreateChangeSet's ``ResourcesToImport``."""
        adopter = ADOPTERS[self.resource_type]
        return {"ResourceType": self.resource_type, "LogicalResourceId": self.logical_id,
                "ResourceIdentifier": {adopter.identifier: adopter.to_identifier(self.name, values)}}


def retained_resources(template: Mapping[str, Any], values: Mapping[str, Any]) -> list[RetainedResource]:
    """The template's ``DeletionPolicy: Retain`` resources (that the stack would create) with their names.

    A retained type without an adopter, or a name that cannot be known before the stack exists, is an
    error in the template: deploy-stack could not take the resource back after a destroy-stack.
    """
    conditions = template.get("Conditions", {})
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("DeletionPolicy") not in ("Retain", "RetainExceptOnCreate"):
            continue
        if "Condition" in resource and not condition(resource["Condition"], values, conditions):
            continue
        if resource["Type"] in REFERENCED:
            continue
        adopter = ADOPTERS.get(resource["Type"])
        if adopter is None:
            raise RetainedResourceError(f"{logical_id} ({resource['Type']}) is retained, but deploy-stack has no way "
                                        "to take it back after destroy-stack; add it to infra.aws.retained.ADOPTERS")
        name = evaluate(resource.get("Properties", {}).get(adopter.name_property), values, conditions)
        if not name:
            raise RetainedResourceError(f"{logical_id} is retained but has no {adopter.name_property}: "
                                        "CloudFormation would name it anew each time, leaving the old one behind")
        found.append(RetainedResource(logical_id, resource["Type"], str(name)))
    return found


def existing_retained(template: Mapping[str, Any], values: Mapping[str, Any],
                      clients: Mapping[str, Any]) -> list[RetainedResource]:
    """Those of :func:`retained_resources` that exist in the account (left by an earlier stack)."""
    return [r for r in retained_resources(template, values) if ADOPTERS[r.resource_type].exists(clients, r.name)]


def import_template(template: Mapping[str, Any], logical_ids: list[str]) -> str:
    """The template of the IMPORT change set: only the resources to import (an import may not create,
    update or delete anything else), with the parameters and conditions their properties use."""
    reduced = {key: template[key] for key in ("AWSTemplateFormatVersion", "Parameters", "Mappings", "Conditions")
               if key in template}
    reduced["Description"] = "aircast: resources kept by an earlier stack, taken back (resource import)"
    reduced["Resources"] = {lid: template["Resources"][lid] for lid in logical_ids}
    return json.dumps(reduced, indent=1)
