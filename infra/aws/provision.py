"""Provisioning helpers for the aircast CloudFormation stack and its IoT things.

Every function takes the boto3 clients it needs (``cloudformation``, ``s3``, ``iot``,
``sagemaker``), so the CLI (``aircast aws ...``), CI and the tests (moto) share one path.

* ``build_assets`` / ``ensure_code_bucket`` / ``upload_assets``: the deploy Lambda zip and
  the Glue ETL script, content-addressed in a code bucket
  (it must exist before the stack, which reads the code from it).
* ``deploy_stack``: create or update the stack through a change set, wait, return outputs.
* ``destroy_stack``: detach the IoT policy from certificates (else the delete fails), delete.
* ``register_thing``: thing + keys-and-certificate + policy + principal, certificate files,
  the account's ATS data endpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from infra.aws import retained

TEMPLATE_PATH = Path(__file__).with_name("aircast.yaml")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STACK_NAME = "aircast"
#: CloudFormation's limit for an inline TemplateBody; larger templates go through S3.
MAX_TEMPLATE_BODY_BYTES = 51_200
#: packages the deploy Lambda needs besides boto3 (which the Lambda runtime provides)
LAMBDA_PACKAGES = ("deployment", "awsrules", "aircast", "evaluation")  # deploy Lambda + scheduled drift check
GLUE_SCRIPT = Path("processing") / "glue_etl.py"
#: Amazon Root CA 1, the CA of IoT Core's ATS endpoints (``iot:Data-ATS``)
AMAZON_ROOT_CA_SUBJECT = "Amazon Root CA 1"

#: the MQTT contract's thing names (DESIGN.md)
THING_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")

Log = Callable[[str], None]


class ProvisionError(RuntimeError):
    """Provisioning failed; the message says what happened and what to do."""


def _quiet(_: str) -> None:
    pass


# ------------------------------------------------------------------ assets
@dataclass(frozen=True)
class Asset:
    """One file the stack reads from the code bucket."""

    key: str
    body: bytes


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def deterministic_zip(files: Mapping[str, bytes]) -> bytes:
    """Zip ``{archive_name: bytes}`` with fixed timestamps and order, so equal inputs give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return buf.getvalue()


def package_files(root: Path, packages: Iterable[str]) -> dict[str, bytes]:
    """Source files of ``packages`` under ``root`` as ``{relative/path.py: bytes}`` (no caches)."""
    files: dict[str, bytes] = {}
    for package in packages:
        pkg_dir = root / package
        if not (pkg_dir / "__init__.py").is_file():
            raise ProvisionError(f"{pkg_dir} is not a Python package (no __init__.py)")
        for path in sorted(pkg_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json", ".yaml"):
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def build_assets(root: Path | None = None) -> dict[str, Asset]:
    """The stack's code (from the checkout at ``root``), keyed by the template parameter naming its S3 key."""
    root = root or REPO_ROOT
    script = root / GLUE_SCRIPT
    if not script.is_file():
        raise ProvisionError(f"the Glue ETL script {script} is missing; the stack's Glue job runs it")
    if not (root / "deployment" / "handler.py").is_file():
        raise ProvisionError(f"{root / 'deployment' / 'handler.py'} is missing; the deploy Lambda runs it")
    lambda_zip = deterministic_zip(package_files(root, LAMBDA_PACKAGES))
    # the ETL script imports only PySpark and the standard library: one file is the whole job
    script_body = script.read_bytes()
    return {
        "DeployFunctionCodeKey": Asset(f"lambda/deploy-{_digest(lambda_zip)}.zip", lambda_zip),
        "GlueScriptKey": Asset(f"glue/glue_etl-{_digest(script_body)}.py", script_body),
    }


def code_bucket_name(account_id: str, region: str, project: str = "aircast") -> str:
    """Name of the bucket that holds the stack's code (one per account and region, like SAM's)."""
    return f"{project}-cfn-assets-{account_id}-{region}"


def ensure_code_bucket(s3: Any, bucket: str, region: str, log: Log = _quiet) -> None:
    """Create the code bucket if it does not exist: encrypted, versioned, public access blocked."""
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise ProvisionError(f"cannot use code bucket {bucket}: {code} (owned by another account?)") from exc
    log(f"creating code bucket s3://{bucket}")
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def upload_assets(s3: Any, bucket: str, assets: Mapping[str, Asset], log: Log = _quiet) -> list[str]:
    """Upload the assets not yet in ``bucket`` (keys are content hashes); return the keys uploaded."""
    uploaded = []
    for asset in assets.values():
        try:
            s3.head_object(Bucket=bucket, Key=asset.key)
            continue
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        log(f"uploading s3://{bucket}/{asset.key} ({len(asset.body)} bytes)")
        s3.put_object(Bucket=bucket, Key=asset.key, Body=asset.body, ServerSideEncryption="AES256")
        uploaded.append(asset.key)
    return uploaded


# ------------------------------------------------------------------ stack
def stack_parameters(values: Mapping[str, str]) -> list[dict[str, str]]:
    """``{"Key": "value"}`` → CloudFormation's ``[{"ParameterKey": ..., "ParameterValue": ...}]``."""
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in sorted(values.items())]


def parse_template(template_text: str) -> dict[str, Any]:
    """The template as a dict (YAML short forms like ``!Ref`` become ``{"Ref": ...}``)."""
    from cfnlint.decode.decode import decode_str

    template, errors = decode_str(template_text)
    if errors or template is None:
        raise ProvisionError(f"template does not parse: {errors}")
    return template


def template_parameter_names(template_text: str) -> set[str]:
    """Names of the Parameters a template declares."""
    return set(parse_template(template_text).get("Parameters", {}))


#: CloudFormation parameter types whose value is the name of an SSM parameter, resolved at deploy time
SSM_PARAMETER_TYPE = "AWS::SSM::Parameter::Value<"


def ssm_parameter_names(template: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, str]:
    """``{template parameter: SSM parameter name}`` for the template's SSM-typed parameters (given or default)."""
    out = {}
    for key, spec in template.get("Parameters", {}).items():
        if str(spec.get("Type", "")).startswith(SSM_PARAMETER_TYPE):
            name = parameters.get(key, spec.get("Default"))
            if name:
                out[key] = str(name)
    return out


def resolve_ssm_parameters(ssm: Any, names: Mapping[str, str], region: str) -> dict[str, str]:
    """The values CloudFormation will read for ``names``; a missing parameter is refused before any change.

    CloudFormation would fail the change set with the same cause; this says which parameter and what to pass.
    """
    if not names:
        return {}
    found: dict[str, str] = {}
    wanted = sorted(set(names.values()))
    for start in range(0, len(wanted), 10):  # GetParameters takes at most 10 names
        page = ssm.get_parameters(Names=wanted[start:start + 10])
        found.update({p["Name"]: p["Value"] for p in page.get("Parameters", [])})
    missing = [f"{key}={name}" for key, name in sorted(names.items()) if name not in found]
    if missing:
        raise ProvisionError(
            f"SSM parameter(s) not found in {region}: {', '.join(missing)}. Pass --parameter KEY=<an SSM parameter "
            f"that exists in {region}> (each parameter's Description in {TEMPLATE_PATH.name} says what it holds)")
    return {key: found[name] for key, name in names.items()}


def _stack_status(cfn: Any, stack_name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    """The stack's Outputs as ``{OutputKey: OutputValue}``."""
    try:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise ProvisionError(f"stack {stack_name} does not exist; run `aircast aws deploy-stack` first") from exc
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _failure_reasons(cfn: Any, stack_name: str, limit: int = 8) -> list[str]:
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return []
    return [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}"
            for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED")][:limit]


def wait_for_stack(cfn: Any, stack_name: str, *, poll_s: float = 10.0, timeout_s: float = 3600.0,
                   sleep: Callable[[float], None] = time.sleep, log: Log = _quiet) -> str:
    """Poll until the stack leaves its ``*_IN_PROGRESS`` state; return the final status."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        status = _stack_status(cfn, stack_name)
        if status is None:
            return "DELETE_COMPLETE"
        if status != last:
            log(f"stack {stack_name}: {status}")
            last = status
        if not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise ProvisionError(f"stack {stack_name} still {status} after {timeout_s:.0f}s; check the console")
        sleep(poll_s)


@dataclass
class StackDeployment:
    """What ``deploy_stack`` did."""

    stack_name: str
    change_set_type: str  # CREATE or UPDATE
    status: str
    changes: list[dict[str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    adopted: list[str] = field(default_factory=list)  # retained resources taken back by a resource import


def _template_argument(text: str, s3: Any, code_bucket: str | None) -> dict[str, str]:
    """``TemplateBody``, or ``TemplateURL`` after an upload for a template over CloudFormation's inline limit."""
    if len(text.encode()) <= MAX_TEMPLATE_BODY_BYTES:
        return {"TemplateBody": text}
    if s3 is None or code_bucket is None:
        raise ProvisionError("the template is over 51,200 bytes; pass s3 and code_bucket to upload it")
    key = f"templates/aircast-{_digest(text.encode())}.yaml"
    s3.put_object(Bucket=code_bucket, Key=key, Body=text.encode(), ServerSideEncryption="AES256")
    return {"TemplateURL": f"https://{code_bucket}.s3.{s3.meta.region_name}.amazonaws.com/{key}"}


def _change_set(cfn: Any, stack_name: str, change_set_type: str, template_arg: Mapping[str, str],
                parameters: Mapping[str, str], *, poll_s: float, sleep: Callable[[float], None], log: Log,
                **extra: Any) -> tuple[str, dict[str, Any]]:
    """Create a change set and wait until CloudFormation has computed it; return its id and description."""
    change_set_name = f"aircast-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    log(f"creating {change_set_type} change set {change_set_name} for stack {stack_name}")
    created = cfn.create_change_set(
        StackName=stack_name, ChangeSetName=change_set_name, ChangeSetType=change_set_type,
        Parameters=stack_parameters(parameters), Capabilities=["CAPABILITY_NAMED_IAM"],
        Tags=[{"Key": "project", "Value": "aircast"}], **template_arg, **extra)
    change_set_id = created["Id"]
    while True:
        described = cfn.describe_change_set(ChangeSetName=change_set_id, StackName=stack_name)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return change_set_id, described
        sleep(min(poll_s, 5.0))


def _adopt_retained(cfn: Any, stack_name: str, template: Mapping[str, Any], parameters: Mapping[str, str], *,
                    clients: Mapping[str, Any], account_id: str, s3: Any, code_bucket: str | None, poll_s: float,
                    sleep: Callable[[float], None], log: Log) -> list[str]:
    """Create the stack from the resources an earlier stack retained, if any exist; return their names."""
    values = retained.parameter_values(template, parameters, account_id=account_id, region=cfn.meta.region_name,
                                       stack_name=stack_name)
    try:
        existing = retained.existing_retained(template, values, clients)
    except retained.RetainedResourceError as exc:
        raise ProvisionError(str(exc)) from exc
    if not existing:
        return []
    names = [f"{r.logical_id} {r.name}" for r in existing]
    log(f"taking back what an earlier stack kept (resource import): {', '.join(names)}")
    body = retained.import_template(template, [r.logical_id for r in existing])
    change_set_id, described = _change_set(
        cfn, stack_name, "IMPORT", _template_argument(body, s3, code_bucket), parameters, poll_s=poll_s, sleep=sleep,
        log=log, ResourcesToImport=[r.to_import(values) for r in existing])
    if described["Status"] == "FAILED":
        raise ProvisionError(f"CloudFormation cannot import {', '.join(names)}: {described.get('StatusReason', '')}. "
                             "Nothing was changed; delete or rename those resources (see docs/aws.md, Tear down), "
                             "then deploy again")
    cfn.execute_change_set(ChangeSetName=change_set_id, StackName=stack_name)
    final = wait_for_stack(cfn, stack_name, poll_s=poll_s, sleep=sleep, log=log)
    if final != "IMPORT_COMPLETE":
        reasons = "; ".join(_failure_reasons(cfn, stack_name)) or "see the stack events in the console"
        raise ProvisionError(f"importing {', '.join(names)} into stack {stack_name} ended {final}: {reasons}")
    return names


def deploy_stack(cfn: Any, stack_name: str, parameters: Mapping[str, str], *,
                 template_text: str | None = None, s3: Any = None, code_bucket: str | None = None,
                 ssm: Any = None, retained_clients: Mapping[str, Any] | None = None, account_id: str | None = None,
                 poll_s: float = 10.0, sleep: Callable[[float], None] = time.sleep,
                 log: Log = _quiet) -> StackDeployment:
    """Create or update ``stack_name`` through a change set, execute it, wait, return the outputs.

    A template over CloudFormation's inline limit is uploaded to ``code_bucket`` (needs ``s3``).
    With ``ssm``, the template's SSM-typed parameters are resolved first, so a parameter missing
    in the region is refused with its name before anything changes.
    With ``retained_clients`` (``{"s3": ..., "sagemaker": ...}``) and ``account_id``, a stack created
    where an earlier one was deleted first takes back the resources that one retained
    (:mod:`infra.aws.retained`), instead of failing on their names.
    A change set without changes is deleted and the current outputs are returned.
    """
    text = template_text if template_text is not None else TEMPLATE_PATH.read_text()
    template = parse_template(text)
    unknown = sorted(set(parameters) - set(template.get("Parameters", {})))
    if unknown:
        raise ProvisionError(f"unknown stack parameter(s) {', '.join(unknown)}; see Parameters in {TEMPLATE_PATH.name}")
    if ssm is not None:
        resolve_ssm_parameters(ssm, ssm_parameter_names(template, parameters), ssm.meta.region_name)
    status = _stack_status(cfn, stack_name)
    if status is not None and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise ProvisionError(f"stack {stack_name} is {status}; wait for it to finish, then retry")
    if status == "ROLLBACK_COMPLETE":
        raise ProvisionError(f"stack {stack_name} failed its first creation (ROLLBACK_COMPLETE) and cannot be "
                             f"updated; run `aircast aws destroy-stack --stack-name {stack_name}`, then deploy again")
    change_set_type = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
    adopted: list[str] = []
    if change_set_type == "CREATE" and retained_clients is not None:
        if account_id is None:
            raise ValueError("retained_clients needs account_id")
        adopted = _adopt_retained(cfn, stack_name, template, parameters, clients=retained_clients,
                                  account_id=account_id, s3=s3, code_bucket=code_bucket, poll_s=poll_s, sleep=sleep,
                                  log=log)
        if adopted:
            change_set_type = "UPDATE"
    change_set_id, described = _change_set(cfn, stack_name, change_set_type, _template_argument(text, s3, code_bucket),
                                           parameters, poll_s=poll_s, sleep=sleep, log=log)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if any(marker in reason for marker in _NO_CHANGES):
            log(f"stack {stack_name} is up to date")
            cfn.delete_change_set(ChangeSetName=change_set_id, StackName=stack_name)
            return StackDeployment(stack_name, change_set_type, status or "", [], stack_outputs(cfn, stack_name),
                                   adopted)
        raise ProvisionError(f"change set for {stack_name} failed: {reason}")
    changes = [{"action": c["ResourceChange"].get("Action", ""),
                "logical_id": c["ResourceChange"].get("LogicalResourceId", ""),
                "type": c["ResourceChange"].get("ResourceType", ""),
                "replacement": str(c["ResourceChange"].get("Replacement", ""))}
               for c in described.get("Changes", []) if "ResourceChange" in c]
    for change in changes:
        log(f"  {change['action']:<7} {change['logical_id']} ({change['type']})")
    cfn.execute_change_set(ChangeSetName=change_set_id, StackName=stack_name)
    final = wait_for_stack(cfn, stack_name, poll_s=poll_s, sleep=sleep, log=log)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        reasons = "; ".join(_failure_reasons(cfn, stack_name)) or "see the stack events in the console"
        raise ProvisionError(f"stack {stack_name} ended {final}: {reasons}")
    return StackDeployment(stack_name, change_set_type, final, changes, stack_outputs(cfn, stack_name), adopted)


def destroy_stack(cfn: Any, iot: Any, stack_name: str, *, poll_s: float = 10.0,
                  sleep: Callable[[float], None] = time.sleep, log: Log = _quiet) -> str:
    """Delete the stack; first detach its IoT policy from certificates (IoT refuses to delete an attached policy).

    Buckets and the Model Package Group are retained by the template (DeletionPolicy: Retain); the
    next ``deploy_stack`` (with ``retained_clients``) takes them back.
    """
    if _stack_status(cfn, stack_name) is None:
        raise ProvisionError(f"stack {stack_name} does not exist")
    outputs = stack_outputs(cfn, stack_name)
    policy = outputs.get("IotPolicyName")
    if policy:
        for target in _policy_targets(iot, policy):
            log(f"detaching IoT policy {policy} from {target}")
            iot.detach_policy(policyName=policy, target=target)
    log(f"deleting stack {stack_name}")
    cfn.delete_stack(StackName=stack_name)
    final = wait_for_stack(cfn, stack_name, poll_s=poll_s, sleep=sleep, log=log)
    if final != "DELETE_COMPLETE":
        reasons = "; ".join(_failure_reasons(cfn, stack_name)) or "see the stack events in the console"
        raise ProvisionError(f"stack {stack_name} ended {final}: {reasons}")
    return final


def _policy_targets(iot: Any, policy_name: str) -> list[str]:
    targets: list[str] = []
    kwargs: dict[str, Any] = {"policyName": policy_name}
    while True:
        try:
            page = iot.list_targets_for_policy(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return targets
            raise
        targets.extend(page.get("targets", []))
        if not page.get("nextMarker"):
            return targets
        kwargs["marker"] = page["nextMarker"]


# ------------------------------------------------------------------ IoT things
@dataclass(frozen=True)
class ThingRegistration:
    """A registered thing: where its credentials are and where it connects."""

    thing_name: str
    thing_arn: str
    certificate_arn: str
    certificate_id: str
    cert_path: Path
    key_path: Path
    ca_path: Path
    endpoint: str
    policy_name: str

    def as_dict(self) -> dict[str, str]:
        return {"thing_name": self.thing_name, "thing_arn": self.thing_arn,
                "certificate_arn": self.certificate_arn, "certificate_id": self.certificate_id,
                "cert": str(self.cert_path), "key": str(self.key_path), "ca": str(self.ca_path),
                "endpoint": self.endpoint, "policy_name": self.policy_name}


def amazon_root_ca_pem() -> bytes:
    """Amazon Root CA 1 (the CA of IoT's ATS endpoints), taken from certifi's Mozilla bundle."""
    import certifi

    bundle = Path(certifi.where()).read_text()
    marker = f"# Label: \"{AMAZON_ROOT_CA_SUBJECT}\""
    start = bundle.find(marker)
    if start < 0:
        raise ProvisionError("Amazon Root CA 1 is not in certifi's bundle; download "
                             "https://www.amazontrust.com/repository/AmazonRootCA1.pem instead")
    begin = bundle.index("-----BEGIN CERTIFICATE-----", start)
    end = bundle.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    return (bundle[begin:end] + "\n").encode()


def thing_credential_paths(pki_dir: Path, thing_name: str) -> tuple[Path, Path, Path]:
    """``(cert, key, ca)`` paths, laid out like the local IoT Core's: ``things/<name>/cert.pem``."""
    d = pki_dir / "things" / thing_name
    return d / "cert.pem", d / "key.pem", pki_dir / "AmazonRootCA1.pem"


def _write_private(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def register_thing(iot: Any, thing_name: str, *, policy_name: str, thing_type: str | None, pki_dir: Path,
                   log: Log = _quiet) -> ThingRegistration:
    """Create the thing and an active certificate, attach policy and principal, write the files.

    The private key exists only in the ``create_keys_and_certificate`` response, so it is
    written before anything else can fail. A thing that already has a certificate in
    ``pki_dir`` is refused rather than given a second identity.
    """
    if not THING_NAME_RE.match(thing_name or ""):
        raise ProvisionError(f"invalid thing name {thing_name!r}: use 1-64 characters from A-Z a-z 0-9 _ -")
    cert_path, key_path, ca_path = thing_credential_paths(pki_dir, thing_name)
    if cert_path.exists() or key_path.exists():
        raise ProvisionError(f"{cert_path.parent} already holds credentials for {thing_name}; "
                             "delete that folder first to issue a new certificate")
    kwargs: dict[str, Any] = {"thingName": thing_name}
    if thing_type:
        kwargs["thingTypeName"] = thing_type
    try:
        thing = iot.create_thing(**kwargs)
    except ClientError as exc:
        raise ProvisionError(f"cannot create thing {thing_name}: {exc}") from exc
    log(f"created thing {thing['thingArn']}")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    _write_private(key_path, cert["keyPair"]["PrivateKey"].encode(), 0o600)
    _write_private(cert_path, cert["certificatePem"].encode(), 0o644)
    if not ca_path.exists():
        _write_private(ca_path, amazon_root_ca_pem(), 0o644)
    log(f"created certificate {cert['certificateId']}, wrote {cert_path.parent}")
    iot.attach_policy(policyName=policy_name, target=cert["certificateArn"])
    iot.attach_thing_principal(thingName=thing_name, principal=cert["certificateArn"])
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    (cert_path.parent / "registration.json").write_text(json.dumps({
        "thing_name": thing_name, "certificate_arn": cert["certificateArn"], "endpoint": endpoint}, indent=2))
    return ThingRegistration(thing_name, thing["thingArn"], cert["certificateArn"], cert["certificateId"],
                             cert_path, key_path, ca_path, endpoint, policy_name)
