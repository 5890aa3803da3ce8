"""Local Spark for the Glue job: one quiet ``local[*]`` session per process.

Stands in for the Glue 5.0 runtime (Spark 3.5): UTC session time zone, no UI,
a log4j2 configuration at level error, driver bound to 127.0.0.1 and few
shuffle partitions (the data of one machine is small; 200 tasks of nothing
cost more than the work).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties")

#: Session settings; any of them can be overridden per call.
DEFAULT_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "3g",
    # Small files: don't pack many tiny raw objects per task by a 4 MiB open-cost guess.
    "spark.sql.files.openCostInBytes": "1048576",
    # The job's validation compiles into one whole-stage-codegen loop whose method is over
    # HotSpot's 8000-byte limit for JIT compilation: without this flag it runs interpreted
    # (1M-row bench: 74 s of task CPU with the limit, 53 s without).
    "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile=file:{LOG4J2_PROPERTIES} -Duser.timezone=UTC "
                                     "-XX:-DontCompileHugeMethods",
    # The job reads an explicit list of raw objects; stat them in the driver, not with a
    # Spark job of one task per object (the default above 32 paths).
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
}


def get_spark(app_name: str = "aircast-glue", master: str = "local[*]", conf: dict[str, str] | None = None) -> Any:
    """Return the process's Spark session, starting it with aircast's local settings if needed.

    JVM options only take effect on the first call in a process (as with any
    Spark session); later calls return the running session. ``file:`` paths go through
    :mod:`.localfs` (no ``chmod`` process per file) where the JDK can compile it, and the
    JVM maps the class archive of :mod:`.cds` when ``make install`` wrote one.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    from pyspark.sql import SparkSession

    from infra.local.glue import cds, localfs

    settings = {**DEFAULT_CONF, **localfs.spark_conf(), **(conf or {})}
    options = "spark.driver.extraJavaOptions"
    settings[options] = cds.spark_java_options(settings.get(options, ""))
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _python() -> str:
    import sys

    return sys.executable


def service_conf(heap_mib: int, jit: str = "tiered") -> dict[str, str]:
    """Session settings of the long-lived Glue service: a bounded heap that it gives back when idle.

    ``-Xmx`` is ``heap_mib``; G1's periodic collection (every 30 s while idle) returns
    committed heap the service no longer uses, so a warm session between hourly runs holds
    about what its live data needs, never more than the bound.

    ``jit="c1"`` stops HotSpot at its quick compiler (``-XX:TieredStopAtLevel=1``). On 2 cores
    the optimizing compiler competes with the first runs for the CPU: the demo's first run
    (11,101 records over 120 days) on a cold JVM took 26.9 s tiered, 13.3 s with C1 only,
    while a warm run of that size is the same either way (~5 s) and a 1M-record run is
    ~35 % slower (77.9 vs 57.5 s cold). The service runs small hourly increments, so C1 is
    its default; ``tiered`` is HotSpot's default, for big backfills.
    """
    if jit not in ("c1", "tiered"):
        raise ValueError(f"jit must be c1 or tiered, got {jit!r}")
    options = DEFAULT_CONF["spark.driver.extraJavaOptions"] + (
        " -XX:+UseG1GC -XX:G1PeriodicGCInterval=30000 -XX:MinHeapFreeRatio=10 -XX:MaxHeapFreeRatio=30")
    if jit == "c1":
        options += " -XX:TieredStopAtLevel=1"
    return {"spark.driver.memory": f"{heap_mib}m", "spark.driver.extraJavaOptions": options}


def memory_stats(spark: Any) -> dict[str, float]:
    """The session JVM's heap (max / committed / used) and resident set, MiB."""
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
    mib = 1024 * 1024
    stats = {
        "heap_max_mib": round(runtime.maxMemory() / mib, 1),
        "heap_committed_mib": round(runtime.totalMemory() / mib, 1),
        "heap_used_mib": round((runtime.totalMemory() - runtime.freeMemory()) / mib, 1),
    }
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    if proc is not None:
        stats["jvm_rss_mib"] = _rss_mib(proc.pid)
    return stats


def jit_of(spark: Any) -> str:
    """The session JVM's JIT as it runs: "c1" (``-XX:TieredStopAtLevel=1``) or "tiered"."""
    args = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    return "c1" if "-XX:TieredStopAtLevel=1" in list(args) else "tiered"


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


class ProcessSession:
    """This process's Spark session for job runs (started on first use)."""

    def __init__(self, conf: dict[str, str] | None = None) -> None:
        self.conf = conf or {}
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            return get_spark(conf=self.conf)

    def recover(self) -> None:
        """Replace the session when it no longer answers (its JVM died, e.g. out of memory)."""
        with self._lock:
            spark = get_spark(conf=self.conf)
            try:
                spark.range(1).count()
            except Exception:  # noqa: BLE001 - any failure means: start a new one
                try:
                    spark.stop()
                except Exception:  # noqa: BLE001
                    pass
                get_spark(conf=self.conf)


#: The Spark job group of warm-up work: a run that arrives cancels it and starts at once.
WARMUP_JOB_GROUP = "aircast-glue-warmup"


class JvmCallsStopped(RuntimeError):
    """Raised in a thread at its next call into the JVM once its stop event is set."""


#: thread id → (its stop event, what the refusal says), for ``stops_at_next_jvm_call``
_STOPS: dict[int, tuple[threading.Event, str]] = {}
_INSTALL = threading.Lock()


@contextlib.contextmanager
def stops_at_next_jvm_call(spark: Any, stop: threading.Event, reason: str) -> Iterator[None]:
    """While inside: once ``stop`` is set, this thread's next call into the JVM raises ``JvmCallsStopped``.

    Cancelling Spark jobs stops only what runs in tasks; the driver-side work of a job script
    (building and analysing its DataFrames, planning, compiling the generated code: seconds on a
    cold JVM; or any loop of JVM calls) goes on between its jobs. Refusing the thread's own next
    call stops it where it is: the call in flight ends, then the script fails out. Other threads'
    calls pass through untouched. Used for the warm-up (a run arrived) and for runs (stopped, or
    past their timeout)."""
    client = spark.sparkContext._gateway._gateway_client
    with _INSTALL:
        if "send_command" not in vars(client):  # once per gateway: one check per call, by thread
            original = client.send_command

            def send_command(*args: Any, **kwargs: Any) -> Any:
                entry = _STOPS.get(threading.get_ident())
                if entry is not None and entry[0].is_set():
                    raise JvmCallsStopped(entry[1])
                return original(*args, **kwargs)

            client.send_command = send_command
    owner = threading.get_ident()
    _STOPS[owner] = (stop, reason)
    try:
        yield
    finally:
        _STOPS.pop(owner, None)


class WarmSession(ProcessSession):
    """A session started at once in the background and warmed up until a run needs it.

    ``get()`` waits until the session has started (runs meanwhile stay ``STARTING``, as on
    Glue while it acquires resources). The warm-up starts as soon as the session has, when no
    run came meanwhile. A run never waits for it: one that arrives before it began skips it, one
    that arrives during it starts at once, tells it to stop (``stop_warmup``), has its Spark jobs
    (job group ``WARMUP_JOB_GROUP``) cancelled and its next call into the JVM refused, so the run
    finds the JVM as warm as it got and soon has the CPU to itself.
    ``state`` is ``starting``, ``warming``, ``ready`` or ``failed``.
    """

    def __init__(self, conf: dict[str, str],
                 warmup: Callable[[Any, threading.Event], None] | None = None) -> None:
        super().__init__(conf)
        self.warmup = warmup
        self.state = "starting"
        self.error = ""
        self.started_s = self.warmup_s = 0.0
        self.warmup_cut_short = False
        self.jit = ""
        self.warmup_error = ""
        self.stop_warmup = threading.Event()
        self._started = threading.Event()
        self._ready = threading.Event()
        self._canceller: threading.Thread | None = None
        self._spark: Any = None

    def start(self) -> None:
        threading.Thread(target=self._start, name="glue-session", daemon=True).start()

    def _start(self) -> None:
        t0 = time.monotonic()
        try:
            self._spark = super().get()
            self.started_s = time.monotonic() - t0
            self.jit = jit_of(self._spark)  # fixed for the JVM's life: read once
            if self.warmup is not None and not self.stop_warmup.is_set():  # no run waiting for the JVM yet
                # At once, not after an idle delay: even a pass cut short by the first run leaves that run
                # the classes loaded and the methods compiled so far (the demo's first Lake stage: 16.3 s
                # with the warm-up 10 s after the session, which the run always came before; 9.6-13.0 s
                # with it at once and cut short).
                self.state = "warming"
                self._started.set()
                t1 = time.monotonic()
                try:
                    with stops_at_next_jvm_call(self._spark, self.stop_warmup,
                                                "a run arrived: the warm-up stops before its next call into the JVM"):
                        self.warmup(self._spark, self.stop_warmup)
                except Exception as exc:  # noqa: BLE001 - a failed or cancelled warm-up costs speed, not runs
                    if not self.stop_warmup.is_set():
                        self.warmup_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self.warmup_s = time.monotonic() - t1
            self.warmup_cut_short = self.warmup is not None and self.stop_warmup.is_set()
            self.state = "ready"
        except Exception as exc:  # noqa: BLE001 - reported by get() and the health check
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self._started.set()
            self._ready.set()

    def get(self) -> Any:
        self.stop_warmup.set()  # a run is here: no warm-up from now on
        self._started.wait()
        if self.state == "failed":
            raise RuntimeError(f"the Spark session did not start: {self.error}")
        if not self._ready.is_set():
            with self._lock:
                if self._canceller is None:
                    self._canceller = threading.Thread(target=self._cancel_warmup, name="glue-warmup-cancel",
                                                       daemon=True)
                    self._canceller.start()
        return super().get()

    def _cancel_warmup(self) -> None:
        """Cancel the warm-up's Spark jobs until it has returned: one it starts after a cancel must stop
        too. The run does not wait for this. What no cancel reaches, the warm-up's driver-side work,
        ends at its next call into the JVM (``stops_at_next_jvm_call``)."""
        context = self._spark.sparkContext
        while True:
            context.cancelJobGroup(WARMUP_JOB_GROUP)
            if self._ready.wait(0.1):
                return

    def stats(self) -> dict[str, Any]:
        """State, start and warm-up times, and (once started) the JVM's memory."""
        out: dict[str, Any] = {"state": self.state, "started_s": round(self.started_s, 1),
                               "warmup_s": round(self.warmup_s, 1)}
        if self.warmup_cut_short:
            out["warmup_cut_short"] = True
        if self.warmup_error:
            out["warmup_error"] = self.warmup_error
        if self.error:
            out["error"] = self.error
        if self._spark is not None and self.state != "failed":
            out.update(memory_stats(self._spark), jit=self.jit)
        return out
