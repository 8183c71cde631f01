"""The one way a stage gets a Spark session (download's `--engine spark`, img2dataset's pyspark distributor).

    with spark_session(master=None, workers=2) as spark: ...

- An active session (e.g. under `spark-submit`) is used as is and left running.
- Otherwise one is built: `master` ("spark://host:7077", "yarn", "k8s://...") or a local master with
  `workers` cores, a small driver heap (img2dataset's own default asks for 16 GB), no web UI, the
  driver bound to 127.0.0.1 when local; stopped at the end.
- Executors get this process's Python (`PYSPARK_PYTHON`) and its storage settings (AWS_*, FSSPEC_*, ...:
  the object store's endpoint and credentials) as `spark.executorEnv.*`, as Ray workers do.
Needs pyspark (a dependency) and Java 17+ (`make setup` installs Debian's default-jre-headless).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys

from qwenvl_data.errors import UsageError
from qwenvl_data.pipelines.engines.ray_setup import worker_env


def check_java() -> None:
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise UsageError(
            "--engine spark needs a Java 17+ runtime: run `make setup` (installs Debian's "
            "default-jre-headless) or set JAVA_HOME"
        )


@contextlib.contextmanager
def spark_session(master: str | None = None, workers: int | None = None, driver_memory: str = "2g"):
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError("--engine spark needs pyspark (pip install pyspark)") from None
    check_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    local = not master or master.startswith("local")
    builder = (
        SparkSession.builder.master(master or f"local[{max(1, int(workers or os.cpu_count() or 1))}]")
        .appName("qwenvl-data")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "true")
    )
    if local:
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    for key, value in worker_env().items():
        builder = builder.config(f"spark.executorEnv.{key}", value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()
