"""Import guard of a local job: installed as ``sitecustomize`` in the job's Python process.

The local executor copies this file as ``sitecustomize.py`` into a folder beside the job with
``contract.json`` (the image's name, the top-level modules it has, the job's own folders) and puts
that folder first on ``PYTHONPATH``; Python's ``site`` imports it before the job's script runs.

From then on an import *made by the job's own code* (a file under the job's folders) of a module
the image does not have raises ``ModuleNotFoundError: No module named 'x'``, as the container's
Python would. Imports made inside installed packages are theirs (the image ships a package with its
dependencies), so they are not checked. Standard library only: this runs before anything else.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import json
import os
import sys


def _install() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "contract.json"), encoding="utf-8") as f:
        contract = json.load(f)
    allowed = frozenset(contract["allowed"])
    roots = tuple(os.path.join(os.path.realpath(r), "") for r in contract["job_roots"])
    own: dict[str, bool] = {}
    job_files: dict[str, bool] = {}  # importer file → under the job's folders (realpath is slow; imports are many)
    # this folder must not shadow anything of the job's: it only had to be found at startup
    while here in sys.path:
        sys.path.remove(here)

    def is_job_code(importer: object) -> bool:
        if not isinstance(importer, str):
            return False
        if importer not in job_files:
            job_files[importer] = os.path.realpath(importer).startswith(roots)
        return job_files[importer]

    def is_own_module(top: str) -> bool:
        # the job's own code: a module found on the job's own sys.path entries (its code and lib folders)
        if top not in own:
            paths = [p for p in sys.path if os.path.join(os.path.realpath(p or "."), "").startswith(roots)]
            own[top] = importlib.machinery.PathFinder.find_spec(top, paths) is not None
        return own[top]

    def check(name: str, importer_globals: object) -> None:
        if not isinstance(importer_globals, dict) or not is_job_code(importer_globals.get("__file__")):
            return
        top = name.partition(".")[0]
        if top and top not in allowed and not is_own_module(top):
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)

    real_import = builtins.__import__
    real_import_module = importlib.import_module

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002, ANN001, ANN202
        if level == 0:
            check(name, globals)
        return real_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name, package=None):  # noqa: ANN001, ANN202
        if not name.startswith("."):
            check(name, sys._getframe(1).f_globals)
        return real_import_module(name, package)

    builtins.__import__ = guarded_import
    importlib.import_module = guarded_import_module


if __name__ == "sitecustomize":  # only as the job's sitecustomize, never when imported from the repo
    _install()
