"""A faster ``file:`` file system for local Spark: permissions through java.nio, not ``chmod`` / ``ls``.

pip's pyspark ships no Hadoop native library, so Hadoop's local file system starts a
``chmod`` process for every file and folder a write creates (about three per parquet
file: 370 processes for one write of 120 day partitions, 2.6 s of a 2.6 s write). The
job's lake is partitioned by day, so every run paid it per day touched. Its ``listFiles``
(how the job finds its raw objects) starts an ``ls -ld`` per file and folder listed for the
permission the listed status carries: 0.4 s of every run over 42 objects, 0.015 s without.

``java/aircast/hadoop/NioLocalFileSystem.java`` is Hadoop's ``LocalFileSystem`` with
``setPermission`` and the located listing's permission, owner and group through java.nio:
the same files, checksums, permissions and statuses. It is
compiled once with the JDK's ``javac`` (the one beside the ``java`` Spark launches) into
a jar kept in this environment (``<venv>/share/aircast/``, else ``~/.cache/aircast/``,
never a shared temporary folder: the jar runs inside the session's JVM). Without
``javac`` the session keeps Hadoop's own file system: slower, the same results.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("java") / "aircast" / "hadoop" / "NioLocalFileSystem.java"
CLASS_NAME = "aircast.hadoop.NioLocalFileSystem"
_lock = threading.Lock()
_built: dict[str, str] = {}


def java_home_bin() -> Path | None:
    """The ``bin`` folder of the Java that Spark will launch (``JAVA_HOME``, else ``java`` on PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return Path(home) / "bin"
    java = shutil.which("java")
    return Path(os.path.realpath(java)).parent if java else None


def _cache_dirs() -> list[Path]:
    return [Path(sys.prefix) / "share" / "aircast", Path.home() / ".cache" / "aircast"]


def spark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def jar_path() -> Path | None:
    """The compiled jar (built now if needed), or None when it cannot be built here."""
    with _lock:
        if "jar" in _built:
            return Path(_built["jar"]) if _built["jar"] else None
        jar = _build()
        _built["jar"] = str(jar) if jar else ""
        return jar


def _build() -> Path | None:
    bin_dir = java_home_bin()
    javac = bin_dir / "javac" if bin_dir else None
    if javac is None or not javac.exists():
        log.info("no javac beside %s: local Spark keeps Hadoop's file system (one chmod process per file)",
                 bin_dir or "java")
        return None
    # the source and the JDK that compiles it (a new JDK, a new jar: class files are versioned)
    jdk = f"{os.path.realpath(javac)}:{javac.stat().st_mtime_ns}"
    digest = hashlib.sha256(SOURCE.read_bytes() + jdk.encode()).hexdigest()[:16]
    name = f"aircast-localfs-{digest}.jar"
    for folder in _cache_dirs():
        if (folder / name).is_file():
            return folder / name
    for folder in _cache_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            return _compile(javac, folder / name)
        except OSError:
            continue
        except subprocess.CalledProcessError as exc:
            log.warning("could not compile %s (%s): local Spark keeps Hadoop's file system",
                        SOURCE.name, (exc.stderr or "").strip().splitlines()[:1])
            return None
    return None


def _compile(javac: Path, target: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        classes = Path(tmp) / "classes"
        subprocess.run([str(javac), "-nowarn", "-cp", str(spark_jars() / "*"), "-d", str(classes), str(SOURCE)],
                       check=True, capture_output=True, text=True)
        staged = Path(tmp) / target.name
        with zipfile.ZipFile(staged, "w") as zf:
            for path in sorted(classes.rglob("*.class")):
                zf.write(path, path.relative_to(classes).as_posix())
        os.replace(staged, target)  # atomic: a concurrent build finds a whole jar or none
    return target


def spark_conf() -> dict[str, str]:
    """Session settings that put the file system in place; empty when the jar cannot be built."""
    jar = jar_path()
    if jar is None:
        return {}
    return {"spark.driver.extraClassPath": str(jar), "spark.hadoop.fs.file.impl": CLASS_NAME}
