"""A class data sharing archive for local Spark's JVM: a cold session starts about 2 s sooner.

A Spark session loads some 10,000 classes; a cold JVM parses and verifies each one. Java's
application class data sharing (AppCDS, JDK 13+) keeps them parsed and verified in an
archive the JVM maps at start. The archive is written once, by a JVM that started a
session, ran a workload and exited (``-XX:ArchiveClassesAtExit``): ``make install`` runs
``aircast.glue.build_class_archive`` (the ETL job's script over the Glue service's warm-up
lines).
Measured on this 2-core machine: session start 3.8 → 2.1 s, the first job run on a cold
JVM 16.9 → 13.1 s.

It belongs to one Java and one class path: its name carries a digest of both, so a new
JDK, a new pyspark or a rebuilt file system jar simply finds no archive and starts
without one (as a JVM does when an archive does not match). It is kept beside the
file system jar (:mod:`.localfs`): inside this environment, never in a shared folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.local.glue import localfs

#: The JVM's class-sharing messages (a mismatched archive, classes it skips) stay out of the service's log.
_NO_CDS_LOG = "-Xlog:cds=off -Xlog:cds+dynamic=off"
#: Set in the child that writes the archive: where its JVM writes it at exit.
DUMP_ENV = "AIRCAST_SPARK_CDS_DUMP"


@functools.lru_cache(maxsize=1)
def archive_path() -> Path | None:
    """Where this Java and class path's archive is (or would be); None without a Java or a jar folder.
    Computed once per process (every session start asks)."""
    bin_dir = localfs.java_home_bin()
    jar = localfs.jar_path()
    if bin_dir is None or jar is None:
        return None
    java = bin_dir / "java"
    jars = localfs.spark_jars()
    key = "\n".join([os.path.realpath(java), str(java.stat().st_mtime_ns), str(jars),
                     *sorted(p.name for p in jars.glob("*.jar")), str(jar)])
    return jar.parent / f"spark-classes-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def java_options() -> str:
    """Options that map the archive, when there is one for this Java and class path."""
    path = archive_path()
    if path is None or not path.is_file():
        return ""
    return f"-XX:SharedArchiveFile={path} -Xshare:auto {_NO_CDS_LOG}"


def spark_java_options(options: str) -> str:
    """``options`` plus what maps the archive (or, in the child that builds it, what writes it)."""
    dump = os.environ.get(DUMP_ENV)
    if dump:
        return f"{options} -XX:ArchiveClassesAtExit={dump} {_NO_CDS_LOG}".strip()
    return f"{options} {java_options()}".strip()


def build(workload: str, force: bool = False) -> Path | None:
    """Write the archive: a child process starts a session, runs ``workload`` (``module:function``, called
    with the session) and exits, and its JVM writes the classes it loaded. Returns the archive's path."""
    path = archive_path()
    if path is None:
        print("no JDK with javac here: local Spark starts without a class archive", file=sys.stderr)
        return None
    if path.is_file() and not force:
        return path
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "infra.local.glue.cds", "--dump", tmp, workload],
                       env={**os.environ, DUMP_ENV: str(staged)}, check=True)
        if not staged.is_file():
            raise RuntimeError("the JVM wrote no class archive")
        os.replace(staged, path)  # atomic: a session starting now finds a whole archive or none
    print(f"class archive for local Spark: {path} ({path.stat().st_size // 2**20} MiB, "
          f"{time.monotonic() - started:.0f} s)", file=sys.stderr)
    return path


def _dump(workdir: str, workload: str) -> None:
    """In the child: a session that writes its classes at exit, the workload, a clean stop."""
    import importlib

    from infra.local.glue.session import get_spark

    module, _, function = workload.partition(":")
    run = getattr(importlib.import_module(module), function)
    spark = get_spark(app_name="aircast-class-archive")
    run(spark, Path(workdir))
    jvm = spark.sparkContext._gateway.proc
    spark.stop()
    # The JVM writes the archive as it exits, which it does when its stdin closes (pyspark's gateway
    # watches it); wait for that here, or the parent would move a file still being written.
    jvm.stdin.close()
    jvm.wait(timeout=600)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="(internal) the child that writes local Spark's class archive")
    parser.add_argument("--dump", nargs=2, metavar=("WORKDIR", "MODULE:FUNCTION"), required=True)
    args = parser.parse_args(argv)
    _dump(*args.dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
