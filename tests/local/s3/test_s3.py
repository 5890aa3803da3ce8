"""The local S3 refuses what S3 refuses (bucket names, missing buckets and keys) and never
lets a key or bucket name reach a file outside its bucket's folder."""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from aircast.clients import get_client
from infra.local.s3 import bucket_name_problem, uri_to_path


@pytest.fixture
def s3(settings):
    return get_client("s3", settings)


@pytest.mark.parametrize("name", ["..", "ab", "a" * 64, "Upper-case", "under_score", "-leading", "trailing-",
                                  "two..dots", "192.168.5.4", "xn--punycode", "name-s3alias"])
def test_invalid_bucket_names_are_refused(s3, name) -> None:
    assert bucket_name_problem(name)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=name, Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] in ("InvalidBucketName",) or "Invalid bucket name" in str(info.value)


@pytest.mark.parametrize("uri", ["s3://../pki/ca.key", "s3://aircast-artifacts/../other/x",
                                 "s3://aircast-lake/raw/../../aircast-artifacts/model.tar.gz", "s3://aircast-lake/./x"])
def test_uris_that_would_leave_their_bucket_are_refused(settings, s3, uri) -> None:
    (settings.data_dir / "pki").mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "pki" / "ca.key").write_text("secret")
    with pytest.raises(ValueError):
        uri_to_path(uri, settings.s3_root)
    bucket, _, key = uri[5:].partition("/")
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key=key)
    assert info.value.response["Error"]["Code"] in ("InvalidBucketName", "InvalidArgument")


def test_missing_bucket_key_and_head_answer_as_s3(s3) -> None:
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.put_object(Bucket="not-created-here", Key="k", Body=b"x")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="aircast-lake", Key="missing")
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket="aircast-lake", Key="missing")
    assert info.value.response["Error"]["Code"] == "404"  # HEAD has no body: the status is the code
    with pytest.raises(ClientError, match="KeyTooLongError"):
        s3.put_object(Bucket="aircast-lake", Key="k" * 1025, Body=b"x")


def test_transfer_manager_round_trip_multipart_and_ranges(s3, tmp_path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(9 * 1024 * 1024))  # above boto3's 8 MiB multipart threshold
    s3.upload_file(str(src), "aircast-artifacts", "models/big.bin")
    s3.download_file("aircast-artifacts", "models/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    part = s3.get_object(Bucket="aircast-artifacts", Key="models/big.bin", Range="bytes=10-19")
    assert part["Body"].read() == src.read_bytes()[10:20] and part["ContentRange"].startswith("bytes 10-19/")


def test_listing_with_delimiter_and_pagination(s3) -> None:
    for key in ("raw/2024/01/a", "raw/2024/01/b", "raw/2024/02/c", "top"):
        s3.put_object(Bucket="aircast-lake", Key=key, Body=b"x")
    top = s3.list_objects_v2(Bucket="aircast-lake", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["raw/"] and [c["Key"] for c in top["Contents"]] == ["top"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="aircast-lake", Prefix="raw/", MaxKeys=2)
    assert [c["Key"] for page in pages for c in page.get("Contents", [])] == [
        "raw/2024/01/a", "raw/2024/01/b", "raw/2024/02/c"]
