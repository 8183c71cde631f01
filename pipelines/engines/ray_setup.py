"""The one way every stage starts or joins Ray.

    with ray_session(address, workers=2, object_store_memory=2e8):   # or start_ray(...) / stop_ray(started)
        ...

- `address` None: a local Ray sized by `workers` (CPUs) with a small object store (our tasks move
  shard paths and counters, not data), no dashboard, no usage stats.
- `address` given ("auto" on a cluster node, "127.0.0.1:6379", or "ray://head:10001"): join that
  cluster; its nodes keep their own resources.
Either way the storage settings of this process (AWS_*, FSSPEC_*, GOOGLE_* variables: endpoints and
credentials of the object store) go to every worker through the job's runtime_env, so workers read
and write the same s3:// or gs:// outputs as the driver. If Ray is already up in this process it is
reused and left running.
"""

from __future__ import annotations

import contextlib
import os

_FORWARD = ("AWS_", "FSSPEC_", "GOOGLE_", "GCS_", "AZURE_", "HF_HUB_OFFLINE", "NO_ALBUMENTATIONS_UPDATE")


def worker_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARD)}


def start_ray(
    address: str | None = None,
    workers: int | None = None,
    object_store_memory: float | None = None,
    progress: bool = False,
) -> bool:
    """Start or join Ray; True when this call started it (the caller then stops it)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        _configure(ray, progress)
        return False
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "runtime_env": {"env_vars": worker_env()}}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(
            num_cpus=max(1, int(workers or os.cpu_count() or 1)),
            object_store_memory=int(float(object_store_memory or 256 * 1024**2)),
            **kwargs,
        )
    _configure(ray, progress)
    return True


def _configure(ray, progress: bool) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = False


def stop_ray(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()


@contextlib.contextmanager
def ray_session(
    address: str | None = None,
    workers: int | None = None,
    object_store_memory: float | None = None,
    progress: bool = False,
):
    started = start_ray(address, workers, object_store_memory, progress)
    try:
        import ray

        yield ray
    finally:
        stop_ray(started)


@contextlib.contextmanager
def one_line_errors():
    """A bad-input or usage error raised in a Ray worker comes back as that error, one line (Ray
    wraps it in a RayTaskError and appends advice lines to the message)."""
    from qwenvl_data.errors import QwenVLDataError

    try:
        yield
    except Exception as e:  # noqa: BLE001 - only Ray's wrapper is unwrapped, everything else re-raised
        cause = e
        while type(cause).__name__.startswith("RayTaskError") and getattr(cause, "cause", None) is not None:
            cause = cause.cause
        if cause is not e and isinstance(cause, QwenVLDataError):
            raise type(cause)(str(cause).splitlines()[0]) from None
        raise
