"""The AWS images and runtimes job code runs in, and the contract local jobs are held to.

A manifest (``*.json`` here) per SageMaker image, Glue version and Lambda runtime says which Python
it runs and which top-level modules are importable there, with the versions and the sources
(Dockerfiles, requirements files, AWS documentation) the facts come from. The local SageMaker
executor runs a processing script only in an image it has a manifest for, under that image's
contract (:mod:`infra.local.runtimes.contract`); the test suite checks every job script's syntax
and standard-library use against its runtime's Python.
"""

from infra.local.runtimes.manifests import (
    MANIFEST_DIR,
    ModuleSpec,
    Runtime,
    UnknownImage,
    load_runtimes,
    parse_image_uri,
    runtime_for_image,
    runtime_named,
)

__all__ = ["MANIFEST_DIR", "ModuleSpec", "Runtime", "UnknownImage", "load_runtimes", "parse_image_uri",
           "runtime_for_image", "runtime_named"]
