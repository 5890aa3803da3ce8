"""Local Spark writes and lists the lake without a ``chmod`` process per file written or an ``ls``
per entry listed (infra/local/glue/localfs.py) and maps the class archive of
infra/local/glue/cds.py when make install wrote one.

The check runs Spark in a child process whose PATH starts with a ``chmod`` and an ``ls`` that
record each call and then do the real one: Hadoop's own local file system calls them for every
file and folder it creates or lists (the test proves its probes on that one), aircast's must never,
and its listing must say what Hadoop's says.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra.local.glue import cds, localfs

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from infra.local.glue.session import get_spark
    out = Path(sys.argv[2])
    spark = get_spark(app_name="aircast-localfs-test")
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    result = {"fs": jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), conf).getClass().getName()}
    log = Path(sys.argv[3])
    # 12 day partitions written by Spark, as the job writes its tables
    rows = [(f"2014-06-{d:02d}", float(d)) for d in range(1, 13) for _ in range(3)]
    spark.createDataFrame(rows, "dt string, value double").write.partitionBy("dt").parquet((out / "t").as_uri())
    result["chmod_by_spark_write"] = len(log.read_text().splitlines()) if log.exists() else 0
    # the same kind of call on Hadoop's own local file system: the probe must see it
    hadoop_fs = jvm.org.apache.hadoop.fs.LocalFileSystem()
    hadoop_fs.initialize(jvm.java.net.URI("file:///"), conf)
    hadoop_fs.mkdirs(jvm.org.apache.hadoop.fs.Path((out / "by-hadoop").as_uri()))
    result["chmod_total"] = len(log.read_text().splitlines()) if log.exists() else 0
    # listing, as the job lists its raw objects: the same statuses from both, ls only from Hadoop's
    ls_log = Path(sys.argv[4])

    def listing(fs):
        table = jvm.org.apache.hadoop.fs.Path((out / "t").as_uri())
        seen = {}
        for it in (fs.listFiles(table, True), fs.listLocatedStatus(table)):  # files, then the day folders
            while it.hasNext():
                s = it.next()
                blocks = s.getBlockLocations()
                seen[s.getPath().toString()] = [s.getPermission().toShort(), s.getOwner(), s.getGroup(), s.getLen(),
                                                s.isFile(), s.isSymlink(), len(blocks) if blocks is not None else None]
        return seen

    result["listing"] = listing(jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), conf))
    result["ls_by_listing"] = len(ls_log.read_text().splitlines()) if ls_log.exists() else 0
    result["hadoop_listing"] = listing(hadoop_fs)
    result["ls_by_hadoop_listing"] = len(ls_log.read_text().splitlines()) - result["ls_by_listing"]
    maps = Path(f"/proc/{spark.sparkContext._gateway.proc.pid}/maps").read_text()
    result["archives_mapped"] = sorted({line.split()[-1] for line in maps.splitlines() if line.endswith(".jsa")})
    spark.stop()
    print(json.dumps(result))
""")


def test_partitioned_write_and_listing_start_no_process_and_keep_hadoops_statuses(tmp_path: Path) -> None:
    if localfs.jar_path() is None:
        pytest.skip("no javac beside java on this machine (scripts/bootstrap.sh installs the JDK)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, ls_log = tmp_path / "chmod.log", tmp_path / "ls.log"
    for command, command_log in (("chmod", log), ("ls", ls_log)):
        real = next(p for p in (f"/usr/bin/{command}", f"/bin/{command}") if Path(p).exists())
        probe = bin_dir / command
        probe.write_text(f'#!/bin/sh\necho "$@" >> "{command_log}"\nexec {real} "$@"\n')
        probe.chmod(0o755)
    out = tmp_path / "lake"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(out), str(log), str(ls_log)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["fs"] == localfs.CLASS_NAME
    assert result["chmod_by_spark_write"] == 0
    assert result["chmod_total"] > 0, "the probe saw no chmod from Hadoop's own file system: it proves nothing"
    # 12 parquet files (and their .crc files hidden by the checksum file system) + _SUCCESS + 12 folders
    assert len(result["listing"]) == 12 + 1 + 12
    assert result["ls_by_listing"] == 0
    assert result["ls_by_hadoop_listing"] > 0, "the probe saw no ls from Hadoop's own listing: it proves nothing"
    assert result["listing"] == result["hadoop_listing"]
    # the class archive make install wrote (infra/local/glue/cds.py), when there is one, is mapped
    archive = cds.archive_path()
    if archive is not None and archive.is_file():
        assert str(archive) in result["archives_mapped"]
    # what Hadoop's file system would have given: files 0666 and folders 0777, less the umask
    umask = os.umask(0)
    os.umask(umask)
    files = [p for p in (out / "t").rglob("*.parquet")]
    assert len(files) == 12
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    for folder in (out / "t").glob("dt=*"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask, folder


def test_the_archive_is_used_only_when_it_exists_and_written_only_when_asked(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "spark-classes-x.jsa"
    monkeypatch.setattr(cds, "archive_path", lambda: archive)
    monkeypatch.delenv(cds.DUMP_ENV, raising=False)
    assert cds.spark_java_options("-Da=1") == "-Da=1"  # no archive: the JVM starts without one
    archive.write_bytes(b"")
    assert cds.spark_java_options("-Da=1").startswith(f"-Da=1 -XX:SharedArchiveFile={archive} -Xshare:auto")
    monkeypatch.setenv(cds.DUMP_ENV, str(tmp_path / "new.jsa"))
    assert f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}" in cds.spark_java_options("-Da=1")


def test_the_service_jvm_s_jit_setting() -> None:
    from infra.local.glue.session import service_conf

    assert "-XX:TieredStopAtLevel=1" in service_conf(1024, "c1")["spark.driver.extraJavaOptions"]
    assert "TieredStopAtLevel" not in service_conf(1024, "tiered")["spark.driver.extraJavaOptions"]
    with pytest.raises(ValueError, match="jit must be c1 or tiered"):
        service_conf(1024, "c2")
