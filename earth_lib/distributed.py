"""Search trials on Ray: an executor that runs ``search.run_search``'s trials at once.

``trial_executor`` returns None (trials in this process, Ray never imported) unless
``search.workers`` > 1 or ``search.ray_address`` names a cluster; a ``RAY_ADDRESS`` left
in the environment is ignored. Each trial is one Ray task reserving one GPU when the
cluster has GPUs, otherwise an equal share of the CPUs; TensorFlow's threads in the task
follow that share. Ray is an optional extra: ``pip install -e '.[distributed]'``.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future
from typing import Any

from earth_lib.errors import ParameterError


def _set_threads(threads: int) -> None:
    """Limit TensorFlow in this (worker) process to ``threads``, before its first operation."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this worker: its threads are set
        pass


def _run_task(threads: int, fn, *args):
    """What a Ray task runs: set the worker's threads, then ``fn(*args)``."""
    if threads:
        _set_threads(threads)
    return fn(*args)


class RayExecutor(Executor):
    """``concurrent.futures.Executor`` over Ray tasks (one trial per task, no retries).

    A task that raises, or whose worker dies, gives a future that raises: the search
    records a failed trial. Large arguments (the objective and the arrays it holds) are
    put in Ray's object store once, not sent with every task.
    """

    def __init__(self, workers: int, address: str | None = None, num_cpus: int | None = None):
        try:
            import ray
        except ImportError as err:
            raise ParameterError(
                "search.workers > 1 or search.ray_address needs Ray: pip install -e "
                "'.[distributed]' (or pip install 'ray>=2.9').") from err
        self.ray, self.address = ray, address
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count(),
                         include_dashboard=False, log_to_driver=False)
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        self.workers = workers
        if gpus:  # one GPU per trial; its CPUs shared among the trials that fit at once
            self.options = {"num_gpus": 1, "num_cpus": max(1, cpus // min(workers, gpus))}
        else:
            self.options = {"num_cpus": max(1, cpus // workers)}
        self.threads = int(self.options["num_cpus"])
        self._task = ray.remote(max_retries=0, **self.options)(_run_task)
        self._refs: dict[int, Any] = {}
        self._running: dict[int, Any] = {}

    def describe(self) -> str:
        """One line for the log: where the trials run and what each reserves."""
        return (f"search trials on Ray at {self.address or 'a local cluster'} "
                f"({self.workers} at once), each reserving "
                f"{', '.join(f'{v} {k[4:].upper()}' for k, v in self.options.items())}")

    def _stored(self, value: Any) -> Any:
        if callable(value) or getattr(value, "nbytes", 0) > 1 << 20:
            if id(value) not in self._refs:
                self._refs[id(value)] = (value, self.ray.put(value))
            return self._refs[id(value)][1]
        return value

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Run ``fn(*args)`` as one Ray task; its result (or error) comes by the future."""
        if kwargs:
            raise TypeError("RayExecutor.submit takes positional arguments only.")
        ref = self._task.remote(self.threads, fn, *[self._stored(a) for a in args])
        future = ref.future()
        self._running[id(future)] = ref
        return future

    def cancel(self, future: Future) -> None:
        """Stop the task behind ``future`` (a hung trial): its worker process is killed."""
        ref = self._running.pop(id(future), None)
        if ref is not None:
            self.ray.cancel(ref, force=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Forget the stored arguments (Ray itself stops with this process)."""
        self._refs.clear()
        self._running.clear()


def trial_executor(workers: int = 1, address: str | None = None) -> RayExecutor | None:
    """Where the search's trials run: None (in this process) or a :class:`RayExecutor`.

    ``address``: a running cluster; without it and with ``workers`` > 1, a local Ray on
    this machine's cores (never the cluster a ``RAY_ADDRESS`` variable names).
    """
    if workers <= 1 and not address:
        return None
    return RayExecutor(workers, address)


def describe(executor: Executor | None) -> str:
    """Where the search's trials ran, for ``run.json``."""
    return "in this process" if executor is None else executor.describe()
