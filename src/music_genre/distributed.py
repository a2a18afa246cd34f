"""Scaling out with existing engines: Dask for extraction, ``tf.distribute`` and Keras mixed
precision for training. Plain Python, configured from ``conf/`` (see README "Scaling out").

Extraction: Dask inside the extraction node, not a Kedro Dask runner. A Kedro runner for Dask
parallelises *nodes*; the data-processing pipeline is a short chain of dependent nodes whose cost
is one node (``extract_tracks``, ~all of it, one track at a time), so node-level parallelism
would buy nothing. Inside the node, ``Client.map`` over the tracks still missing from the cache
spreads exactly the expensive part over the cluster, keeps the per-track cache (only new audio is
sent out), keeps the outputs identical to a local run (same function, results put back in track
order) and leaves every other node, dataset and hook untouched.

Training: a ``tf.distribute`` strategy scope around model building (``default``: whatever device
TensorFlow picks, one GPU when present; ``mirrored``: data parallel over several local GPUs),
and an optional Keras mixed-precision policy, applied only while the model is built so that
nothing leaks into the next model trained in the same process. Several *machines* are used for
many tuning trials (one shared Optuna study), not for one training run: Keras 3 does not train
under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585; a two-worker run here fails with
"Attempt to convert a value (PerReplica...) to a Tensor").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

logger = logging.getLogger(__name__)

SCHEDULERS = ("local", "dask")
STRATEGIES = ("default", "auto", "mirrored")
PRECISIONS = ("off", "auto", "float32", "mixed_float16", "mixed_bfloat16", "bf16_if_supported")


# --------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------


def scheduler_of(execution: Mapping[str, Any] | None) -> str:
    """``params:execution.scheduler``: ``local`` (joblib on this machine) or ``dask``."""
    scheduler = str((execution or {}).get("scheduler", "local") or "local")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"params:execution.scheduler is '{scheduler}'; use one of {SCHEDULERS} "
                         "(conf/base/parameters_data_processing.yml)")
    return scheduler


@contextlib.contextmanager
def dask_client(dask_conf: Mapping[str, Any] | None) -> Iterator[Any]:
    """A ``distributed.Client``: to ``address`` when given, else to a fresh ``LocalCluster``.

    A cluster it started is closed on exit; an external cluster is only disconnected from.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # the extra is optional
        raise ImportError("params:execution.scheduler is 'dask' but dask.distributed is not "
                          "installed: pip install -e '.[dask]'") from exc

    conf = dict(dask_conf or {})
    address = conf.get("address")
    cluster = None
    if address:
        logger.info("Dask: connecting to the scheduler at %s", address)
        try:
            client = Client(str(address), timeout=conf.get("timeout", "30s"))
        except OSError as exc:
            raise ConnectionError(
                f"params:execution.dask.address: no Dask scheduler answers at {address} ({exc}); "
                "start one (`dask scheduler`, then `dask worker <address>` on each machine) or "
                "set address: null for a LocalCluster on this machine") from exc
    else:
        cluster = LocalCluster(
            n_workers=conf.get("n_workers"),  # None: Dask's choice from the cores
            threads_per_worker=int(conf.get("threads_per_worker", 1)),
            processes=bool(conf.get("processes", True)),
            # no fixed port: two runs (or a test beside a run) must not collide
            dashboard_address=conf.get("dashboard_address", ":0"),
        )
        client = Client(cluster)
        logger.info("Dask: LocalCluster with %d worker(s), dashboard %s",
                    len(cluster.workers), client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def map_on_dask(fn: Callable, items: Iterable, dask_conf: Mapping[str, Any] | None,
                **kwargs: Any) -> Iterator[Any]:
    """``fn(item, **kwargs)`` for every item on a Dask cluster, yielded in the items' order.

    Results are fetched as they finish and the cluster-side copy is dropped at once, so workers
    never hold more than the unfinished tasks. ``pure=False``: every call runs, even for equal
    arguments (two files with the same bytes are still two tracks).
    """
    items = list(items)
    if not items:
        return
    from dask.distributed import as_completed

    with dask_client(dask_conf) as client:
        futures = client.map(fn, items, pure=False,
                             batch_size=int((dask_conf or {}).get("batch_size", 1000)), **kwargs)
        position = {f.key: i for i, f in enumerate(futures)}
        done: dict[int, Any] = {}
        next_out = 0
        for future in as_completed(futures):
            done[position[future.key]] = future.result()
            future.release()
            while next_out in done:  # hand results on in order as soon as the prefix is there
                yield done.pop(next_out)
                next_out += 1
        del futures


# --------------------------------------------------------------------------------------------
# TensorFlow: devices, strategy, mixed precision
# --------------------------------------------------------------------------------------------


def gpus() -> list[str]:
    """The GPUs TensorFlow sees (empty with the CPU build or without a GPU)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def _gpu_supports_float16() -> bool:
    import tensorflow as tf

    for device in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(device).get("compute_capability")
        if capability and tuple(capability) >= (7, 0):  # tensor cores: Volta and later
            return True
    return False


def precision_policy_name(setting: Any) -> str:
    """The Keras dtype policy for ``accelerator.mixed_precision``.

    ``off``/``false``/``float32``: float32. ``auto``: ``mixed_float16`` on a GPU with tensor cores
    (compute capability ≥ 7.0), float32 otherwise (on most CPUs bfloat16 is emulated and slower).
    ``mixed_float16`` / ``mixed_bfloat16``: as named. ``bf16_if_supported``: ``mixed_bfloat16``
    on a machine without a GPU whose CPU has bfloat16 instructions (AVX-512 BF16, AMX), float32
    elsewhere; a model trained so is switched to float32 when training ends
    (:func:`music_genre.models.training.float32_after_training`): evaluated, saved and served in
    float32 on any machine.
    """
    if setting in (None, False, "off", "false", "float32", ""):
        return "float32"
    setting = str(setting)
    if setting not in PRECISIONS:
        raise ValueError(f"accelerator.mixed_precision is '{setting}'; use one of {PRECISIONS} "
                         "(conf/base/parameters_scaling.yml)")
    if setting == "auto":
        return "mixed_float16" if _gpu_supports_float16() else "float32"
    if setting == "bf16_if_supported":
        # on CPUs without bfloat16 instructions Keras emulates it, slower than float32
        return "mixed_bfloat16" if cpu_has_bfloat16() and not gpus() else "float32"
    return setting


def cpu_has_bfloat16() -> bool:
    """Whether this machine's CPU has bfloat16 arithmetic (AVX-512 BF16 or AMX; Linux flags)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


@contextlib.contextmanager
def precision_policy(setting: Any) -> Iterator[str]:
    """Keras' global dtype policy set for the block, restored after it.

    Layers take the policy when they are created, so the model built inside keeps it (and its
    ``.keras`` file records it) while models built later in the process are not affected.
    """
    import keras

    name = precision_policy_name(setting)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)


def make_strategy(name: str = "default", devices: list[str] | None = None):
    """The ``tf.distribute`` strategy named in ``accelerator.strategy``.

    * ``default``: TensorFlow's default (one device: the first GPU when present, else the CPU);
    * ``mirrored``: synchronous data parallelism over ``devices`` (default: every visible GPU,
      or the CPU when there is none); each batch is split across the replicas;
    * ``auto``: ``mirrored`` when two or more GPUs are visible, else ``default``.
    """
    import tensorflow as tf

    name = str(name or "default")
    if name == "multi_worker":
        raise ValueError("accelerator.strategy 'multi_worker' is not offered: Keras 3 cannot fit "
                         "under MultiWorkerMirroredStrategy (keras-team/keras#20585). Use "
                         "'mirrored' for several GPUs of one machine, and several machines for "
                         "tuning trials sharing one Optuna study (README 'Scaling out')")
    if name not in STRATEGIES:
        raise ValueError(f"accelerator.strategy is '{name}'; use one of {STRATEGIES} "
                         "(conf/base/parameters_scaling.yml)")
    if name == "auto":
        name = "mirrored" if len(gpus()) >= 2 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)


@contextlib.contextmanager
def accelerated(accelerator: Mapping[str, Any] | None) -> Iterator[Any]:
    """Build (and compile) a Keras model inside this block: strategy scope + precision policy.

    ``accelerator`` is the ``accelerator`` block of ``conf/base/parameters_scaling.yml``
    (``strategy``, ``devices``, ``mixed_precision``); ``None`` means the defaults. Yields the
    strategy; ``fit`` may run outside the block, Keras remembers the strategy of the model.
    """
    conf = dict(accelerator or {})
    strategy = make_strategy(conf.get("strategy", "default"), conf.get("devices"))
    with precision_policy(conf.get("mixed_precision", "off")) as policy, strategy.scope():
        logger.info("Training on %s: strategy %s, %d replica(s), dtype policy %s",
                    ", ".join(gpus()) or "the CPU", type(strategy).__name__,
                    strategy.num_replicas_in_sync, policy)
        yield strategy
