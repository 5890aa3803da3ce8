"""Every CloudFormation template under infra/aws/ passes cfn-lint and the least-privilege rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.api import lint

from infra.aws.policy_lint import check_template, check_template_text
from tests.conftest import REPO_ROOT

TEMPLATES = sorted((REPO_ROOT / "infra" / "aws").glob("*.yaml"))


def test_there_is_a_template() -> None:
    assert any(p.name == "aircast.yaml" for p in TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes(template: Path) -> None:
    # in-process cfn-lint, every rule it runs by default (errors and warnings), two regions
    matches = lint(template.read_text(), regions=["us-east-1", "eu-west-1"])
    assert not matches, "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_policies_are_least_privilege(template: Path) -> None:
    violations = check_template(template)
    assert not violations, "\n".join(map(str, violations))


def test_cfn_lint_catches_a_broken_template() -> None:
    broken = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python2.1
      Handler: deployment.handler.lambda_handler
      Role: arn:aws:iam::123456789012:role/r
      Code: {S3Bucket: b, S3Key: k}
"""
    assert any(m.rule.id.startswith("E") for m in lint(broken, regions=["us-east-1"]))


_ROLE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {{Service: lambda.amazonaws.com}}
            Action: sts:AssumeRole
      Policies:
        - PolicyName: p
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
{statement}
"""


@pytest.mark.parametrize("statement, problem", [
    ('                Action: "*"\n                Resource: arn:aws:s3:::b', "wildcard action '*'"),
    ("                Action: s3:*\n                Resource: arn:aws:s3:::b", "wildcard action 's3:*'"),
    ("                Action: [s3:GetObject, s3:Put*]\n                Resource: arn:aws:s3:::b/*", "wildcard action 's3:Put*'"),
    ('                Action: s3:ListAllMyBuckets\n                Resource: "*"', 'Resource "*" without a comment'),
    ('                Action: s3:ListAllMyBuckets\n                Resource: ["*"]', 'Resource "*" without a comment'),
    ("                NotAction: s3:DeleteObject\n                Resource: arn:aws:s3:::b", "NotAction"),
])
def test_policy_rules_catch_violations(statement: str, problem: str) -> None:
    violations = check_template_text(_ROLE.format(statement=statement))
    assert any(problem in v.message for v in violations), violations


@pytest.mark.parametrize("statement", [
    '                Action: s3:ListAllMyBuckets\n                # ListAllMyBuckets has no resource type\n                Resource: "*"',
    '                Action: s3:ListAllMyBuckets\n                Resource: "*"  # ListAllMyBuckets has no resource type',
    "                Action: [s3:GetObject]\n                Resource: arn:aws:s3:::b/raw/*",
])
def test_policy_rules_accept_narrow_or_explained_statements(statement: str) -> None:
    assert check_template_text(_ROLE.format(statement=statement)) == []


def test_broad_deny_is_allowed() -> None:
    text = _ROLE.format(statement="                Action: s3:GetObject\n                Resource: arn:aws:s3:::b/*")
    text = text.replace("Effect: Allow\n                Action: s3:GetObject",
                        "Effect: Deny\n                Action: s3:*")
    assert check_template_text(text) == []


#: repository files named in the templates, CI definitions and docs (e.g. "tests/aws/test_templates.py")
_CITED_FILE = re.compile(r"(?<![\w/.-])((?:tests|infra|aircast|deployment|evaluation|processing|pipelines|scripts|"
                         r"docs|device|bench|\.ci|\.github)/[\w./-]*\.(?:py|ya?ml|md|sh|c|json|toml))\b")


def test_files_cited_in_templates_ci_and_docs_exist() -> None:
    cited = [REPO_ROOT / "README.md", REPO_ROOT / "codebuild-buildspec.yml", *TEMPLATES,
             *sorted((REPO_ROOT / "docs").glob("*.md")), *sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml")),
             *sorted(REPO_ROOT.glob("*/README.md"))]
    missing = [f"{doc.relative_to(REPO_ROOT)}: {path}" for doc in cited
               for path in _CITED_FILE.findall(doc.read_text()) if not (REPO_ROOT / path).exists()]
    assert not missing, "files cited but absent:\n" + "\n".join(missing)


def test_tests_named_in_docs_exist() -> None:
    """``tests/x.py::test_name`` (and a later ``::test_other`` on the same line, same file) in the docs are real tests."""
    missing = []
    for doc in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            current = None
            for path, name in re.findall(r"(tests/[\w/]+\.py)?::(\w+)", line):
                current = path or current
                if current is None:
                    continue
                source = (REPO_ROOT / current).read_text() if (REPO_ROOT / current).is_file() else ""
                if not re.search(rf"^def {re.escape(name)}\(", source, re.M):
                    missing.append(f"{doc.name}: {current}::{name}")
    assert not missing, "tests named in docs but absent:\n" + "\n".join(missing)
