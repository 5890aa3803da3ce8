"""Event patterns: validation errors that say what is wrong, and EventBridge matching semantics."""

from __future__ import annotations

import pytest

from infra.local.eventbridge.patterns import InvalidEventPattern, matches, parse_event_pattern

APPROVED = {
    "version": "0", "id": "1", "source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change",
    "account": "000000000000", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": ["arn:x"],
    "detail": {"ModelPackageGroupName": "aircast-deepar", "ModelPackageVersion": 3,
               "ModelApprovalStatus": "Approved", "tags": ["blue", "green"],
               "metrics": {"wql": 0.42, "coverage": 0.8}, "host": "10.0.3.7", "note": None},
}


@pytest.mark.parametrize("pattern, fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", "empty"),
    ('{"source": "aws.sagemaker"}', 'must be in an array, e.g. ["aws.sagemaker"]'),
    ('{"source": []}', "empty arrays are not allowed"),
    ('{"detail": {}}', "empty object"),
    ('{"source": [["a"]]}', "nested arrays"),
    ('{"source": [{"prefix": 1}]}', '"prefix" must be a string'),
    ('{"source": [{"prefix": "a", "suffix": "b"}]}', "exactly one key"),
    ('{"source": [{"startswith": "a"}]}', "unknown content filter 'startswith'"),
    ('{"detail": {"x": [{"exists": "yes"}]}}', '"exists" must be true or false'),
    ('{"detail": {"x": [{"numeric": [">", "a"]}]}}', "must be a number"),
    ('{"detail": {"x": [{"numeric": ["~", 1]}]}}', "is not one of"),
    ('{"detail": {"x": [{"numeric": [">", 5, "<", 1]}]}}', "range is empty"),
    ('{"detail": {"x": [{"numeric": [">", 5, ">", 7]}]}}', "one lower bound"),
    ('{"detail": {"x": [{"numeric": [">", 1, "<", 5, "=", 3]}]}}', "one or two"),
    ('{"detail": {"x": [{"numeric": [">", 6e9]}]}}', "outside the supported range"),
    ('{"detail": {"x": [{"anything-but": []}]}}', "must not be empty"),
    ('{"detail": {"x": [{"anything-but": ["a", 1]}]}}', "only strings or only numbers"),
    ('{"detail": {"x": [{"anything-but": {"exists": true}}]}}', '"anything-but" object supports only'),
    ('{"detail": {"x": [{"cidr": "10.0.0.0/99"}]}}', "not a valid network"),
    ('{"detail": {"x": [{"wildcard": "a**b"}]}}', "consecutive"),
    ('{"$or": [{"source": ["a"]}]}', '"$or" takes an array of at least two pattern objects'),
    ('{"detail": {"$or": [{"x": ["a"]}, {"y": "b"}]}}', "must be in an array"),
])
def test_invalid_patterns_say_what_is_wrong(pattern: str, fragment: str) -> None:
    with pytest.raises(InvalidEventPattern) as err:
        parse_event_pattern(pattern)
    assert fragment in str(err.value)


def test_error_names_the_field_path() -> None:
    with pytest.raises(InvalidEventPattern, match=r"detail\.metrics\.wql"):
        parse_event_pattern({"detail": {"metrics": {"wql": 0.5}}})


@pytest.mark.parametrize("pattern, expected", [
    ({"source": ["aws.sagemaker"]}, True),
    ({"source": ["aws.events", "aws.sagemaker"]}, True),  # array = OR
    ({"source": ["aws.events"]}, False),
    ({"source": ["aws.sagemaker"], "detail-type": ["Other"]}, False),  # keys = AND
    ({"detail": {"ModelApprovalStatus": ["Approved"], "ModelPackageGroupName": ["aircast-deepar"]}}, True),
    ({"detail": {"ModelApprovalStatus": ["Rejected"]}}, False),
    ({"detail": {"ModelApprovalStatus": [{"anything-but": "Rejected"}]}}, True),
    ({"detail": {"ModelApprovalStatus": [{"anything-but": ["Approved", "Rejected"]}]}}, False),
    ({"detail": {"ModelApprovalStatus": [{"anything-but": {"prefix": "Appr"}}]}}, False),
    ({"detail": {"missing": [{"anything-but": "x"}]}}, False),  # anything-but needs the field
    ({"detail": {"ModelPackageGroupName": [{"prefix": "aircast-"}]}}, True),
    ({"detail": {"ModelPackageGroupName": [{"prefix": {"equals-ignore-case": "AIRCAST"}}]}}, True),
    ({"detail": {"ModelPackageGroupName": [{"suffix": "-deepar"}]}}, True),
    ({"detail": {"ModelPackageGroupName": [{"equals-ignore-case": "AIRCAST-DeepAR"}]}}, True),
    ({"detail": {"ModelPackageGroupName": [{"wildcard": "air*-deep*"}]}}, True),
    ({"detail": {"ModelPackageGroupName": [{"wildcard": "air*-x*"}]}}, False),
    ({"detail": {"ModelPackageVersion": [3]}}, True),
    ({"detail": {"ModelPackageVersion": [3.0]}}, True),
    ({"detail": {"ModelPackageVersion": ["3"]}}, False),  # types are not coerced
    ({"detail": {"ModelPackageVersion": [{"numeric": [">", 2, "<=", 3]}]}}, True),
    ({"detail": {"ModelPackageVersion": [{"numeric": [">=", 4]}]}}, False),
    ({"detail": {"ModelApprovalStatus": [{"numeric": [">", 0]}]}}, False),  # numeric needs a number
    ({"detail": {"ModelPackageVersion": [{"exists": True}]}}, True),
    ({"detail": {"missing": [{"exists": False}]}}, True),
    ({"detail": {"missing": [{"exists": True}]}}, False),
    ({"detail": {"ModelPackageVersion": [{"exists": False}]}}, False),
    ({"detail": {"tags": ["green"]}}, True),  # event arrays: any element
    ({"detail": {"tags": ["red"]}}, False),
    ({"detail": {"tags": [{"anything-but": "green"}]}}, False),
    ({"detail": {"metrics": {"wql": [{"numeric": [">", 0.4]}]}}}, True),
    ({"detail": {"metrics": {"wql": [{"numeric": [">", 0.5]}]}}}, False),
    ({"detail": {"host": [{"cidr": "10.0.0.0/16"}]}}, True),
    ({"detail": {"host": [{"cidr": "192.168.0.0/16"}]}}, False),
    ({"detail": {"note": [None]}}, True),
    ({"detail": {"ModelPackageVersion": [True]}}, False),
    ({"resources": ["arn:x"]}, True),
    ({"detail": {"nothere": {"deeper": [{"exists": False}]}}}, True),
    # "$or" at any level: the other keys AND one of the alternatives
    ({"source": ["aws.sagemaker"], "$or": [{"detail-type": ["Other"]}, {"detail": {"ModelPackageVersion": [3]}}]}, True),
    ({"source": ["aws.events"], "$or": [{"detail-type": ["Other"]}, {"detail": {"ModelPackageVersion": [3]}}]}, False),
    ({"detail": {"$or": [{"ModelApprovalStatus": ["Rejected"]}, {"tags": ["red"]}]}}, False),
    ({"detail": {"$or": [{"ModelApprovalStatus": ["Rejected"]}, {"metrics": {"wql": [{"numeric": ["<", 1]}]}}]}},
     True),
])
def test_matching_semantics(pattern: dict, expected: bool) -> None:
    assert matches(parse_event_pattern(pattern), APPROVED) is expected
