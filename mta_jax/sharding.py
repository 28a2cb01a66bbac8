"""Device meshes for the episode axis, and multi-host start-up.

The meta-batch is data-parallel: episodes are sharded over every device of a one-axis mesh named
``"episodes"``, parameters and optimiser state are replicated, and XLA inserts the all-reduce of
the mean gradient. No ``pmap``: ``jax.jit`` with ``NamedSharding`` does it all.

How a batch is split (``batch_spec``): an episodic batch (episodes on axis 0) is split on axis 0;
SFT's batch is one "episode" holding every row (leading axis 1), so its ``query`` rows (axis 1)
are split and everything else (the tool documents) is replicated. With several processes
(``jax.distributed``), each process builds only its own rows (``process_rows``) of the batch
that ``numpy.random.default_rng([seed, step])`` defines, so the global batch is the
single-process one.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import threading
import time
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "episodes"


class MeshError(ValueError):
  """A device or process request that cannot be met (raised as ``run_config.ConfigError``)."""


# ---------------------------------------------------------------------------- multi-host

@dataclasses.dataclass(frozen=True)
class DistributedSpec:
  """Where the processes of one run meet: from flags, else ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; cluster launchers (SLURM, TPU pods) need none."""

  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  timeout_s: int = 300

  @classmethod
  def from_env(cls, coordinator_address=None, num_processes=None, process_id=None,
               timeout_s=None) -> "DistributedSpec":
    env = os.environ

    def num(v, key):
      v = v if v not in (None, "", -1) else env.get(key)
      return None if v in (None, "") else int(v)

    return cls(coordinator_address or env.get("JAX_COORDINATOR_ADDRESS") or None,
               num(num_processes, "JAX_NUM_PROCESSES"), num(process_id, "JAX_PROCESS_ID"),
               int(timeout_s or env.get("MTA_DISTRIBUTED_TIMEOUT_S") or 300))

  @property
  def requested(self) -> bool:
    return bool(self.coordinator_address) or bool(os.environ.get("SLURM_JOB_ID")) or bool(
        os.environ.get("TPU_WORKER_HOSTNAMES"))


def _is_initialized() -> bool:
  try:
    from jax._src import distributed  # pylint: disable=import-outside-toplevel
    return distributed.global_state.client is not None
  except (ImportError, AttributeError):
    return False


def _prog() -> str:
  return pathlib.Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "python"


def maybe_initialize_distributed(spec: DistributedSpec | None = None) -> bool:
  """Calls ``jax.distributed.initialize`` when a multi-host launch is configured (flags, the
  environment variables above, or a cluster JAX detects); a no-op on a single host. Returns
  whether this process is part of a multi-process run.

  JAX aborts the process (a C++ fatal error with a stack trace) when the coordinator or a peer
  does not answer in time; a watchdog thread turns that into one line on stderr,
  ``<prog>: error: ...``, and exit status 1, before anything (a checkpoint) is written.
  """
  spec = spec or DistributedSpec.from_env()
  if _is_initialized():
    return jax.process_count() > 1
  if not spec.requested:
    return False
  if spec.coordinator_address and (spec.num_processes is None or spec.process_id is None):
    raise MeshError(f"jax.distributed: coordinator {spec.coordinator_address} given, but the "
                    f"number of processes ({spec.num_processes}) and this process's id "
                    f"({spec.process_id}) are also needed (--num_processes/--process_id or "
                    "JAX_NUM_PROCESSES/JAX_PROCESS_ID)")
  if spec.num_processes is not None and spec.process_id is not None and not (
      0 <= spec.process_id < spec.num_processes):
    raise MeshError(f"jax.distributed: process id {spec.process_id} is not in [0, "
                    f"{spec.num_processes})")
  done = threading.Event()

  def watchdog():
    if not done.wait(spec.timeout_s):
      who = (f"process {spec.process_id} of {spec.num_processes}"
             if spec.process_id is not None else "this process")
      sys.stderr.write(
          f"{_prog()}: error: jax.distributed: the coordinator "
          f"{spec.coordinator_address or '(auto-detected)'} and every process did not all "
          f"answer within {spec.timeout_s} s ({who}); start every process with the same "
          "coordinator address and process count, or raise the timeout\n")
      sys.stderr.flush()
      os._exit(1)  # pylint: disable=protected-access  # JAX would abort with a C++ trace

  threading.Thread(target=watchdog, daemon=True, name="distributed-watchdog").start()
  t0 = time.perf_counter()
  # JAX's own deadline is later than the watchdog's, so the one-line message wins.
  jax.distributed.initialize(spec.coordinator_address, spec.num_processes, spec.process_id,
                             initialization_timeout=spec.timeout_s + 60)
  done.set()
  import logging  # pylint: disable=import-outside-toplevel
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices (%.1f s)",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), time.perf_counter() - t0)
  return jax.process_count() > 1


def is_primary() -> bool:
  """Whether this process writes the run's logs and files (process 0)."""
  return jax.process_index() == 0


# ---------------------------------------------------------------------------- meshes

def episode_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices along the episode axis."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  return Mesh(devices.reshape(-1), (AXIS,))


def parse_devices(setting) -> int | None:
  """``"all"`` -> None, ``N`` or ``"N"`` (N >= 1) -> N; anything else raises ``MeshError``."""
  if isinstance(setting, str) and setting.strip().lower() == "all":
    return None
  try:
    n = int(str(setting).strip())
  except ValueError:
    n = 0
  if n < 1 or isinstance(setting, bool):
    raise MeshError(f"mesh.devices must be 'all' or a positive integer, got {setting!r}")
  return n


def mesh_devices(setting, devices: Sequence | None = None,
                 process_count: int | None = None) -> list:
  """The devices of ``config.mesh.devices``: ``"all"`` = every device of every process, ``N`` =
  the first N / process_count local devices of each process."""
  devices = list(jax.devices() if devices is None else devices)
  procs = jax.process_count() if process_count is None else process_count
  n = parse_devices(setting)
  if n is None:
    return devices
  kind = devices[0].platform if devices else "?"
  if n > len(devices):
    raise MeshError(f"mesh.devices={n} is more than the {len(devices)} {kind} devices this run "
                    f"sees{f' ({procs} processes)' if procs > 1 else ''}: use 'all' or at most "
                    f"{len(devices)}")
  if n % procs:
    raise MeshError(f"mesh.devices={n} does not divide over the {procs} processes: use a "
                    f"multiple of {procs} or 'all'")
  per = n // procs
  by_proc: dict[int, list] = {}
  for d in devices:
    by_proc.setdefault(getattr(d, "process_index", 0), []).append(d)
  return [d for p in sorted(by_proc) for d in by_proc[p][:per]]


def check_batch(n_devices: int, batch: int, batch_key: str, setting) -> None:
  """A batch must split evenly over the mesh: a one-line error naming both numbers."""
  if batch % n_devices:
    divisors = [d for d in range(1, batch + 1) if batch % d == 0 and d <= n_devices]
    raise MeshError(
        f"{batch_key}={batch} does not divide over the {n_devices} devices of "
        f"config.mesh.devices={setting}: make it a multiple of {n_devices} or set "
        f"--config.mesh.devices to one of {', '.join(map(str, divisors))}")


def make_mesh(setting, batch: int, batch_key: str) -> Mesh | None:
  """The run's mesh, or None for one device in one process (the unsharded program, bit for bit
  the single-device run). Raises ``MeshError`` for a count that does not exist or a batch that
  does not divide."""
  devices = mesh_devices(setting)
  check_batch(len(devices), batch, batch_key, setting)
  if len(devices) == 1 and jax.process_count() == 1:
    return None
  return episode_mesh(devices)


# ---------------------------------------------------------------------------- placement

def batch_spec(tree, episodic: bool):
  """A pytree of ``PartitionSpec``: episodes on axis 0 (episodic), or SFT's one "episode" with
  its ``query`` rows on axis 1 and the rest replicated."""
  if episodic:
    return jax.tree.map(lambda _: PartitionSpec(AXIS), tree)
  return {k: jax.tree.map(lambda _, q=(k == "query"): PartitionSpec(None, AXIS) if q
                          else PartitionSpec(), v) for k, v in tree.items()}


def process_rows(mesh: Mesh, n_rows: int) -> slice:
  """This process's contiguous rows of a batch axis of ``n_rows`` split over ``mesh``."""
  sh = NamedSharding(mesh, PartitionSpec(AXIS))
  idx = [s[0] for s in sh.addressable_devices_indices_map((n_rows,)).values()]
  lo = min(s.start or 0 for s in idx)
  hi = max(n_rows if s.stop is None else s.stop for s in idx)
  return slice(lo, hi)


def place_batch(local, mesh: Mesh, specs, global_rows: int):
  """A global batch from this process's rows (all of them on one process)."""
  def one(x, spec):
    sh = NamedSharding(mesh, spec)
    if jax.process_count() == 1:
      return jax.device_put(x, sh)
    shape = list(np.shape(x))
    for axis, name in enumerate(spec):
      if name == AXIS:
        shape[axis] = global_rows
    return jax.make_array_from_process_local_data(sh, np.asarray(x), tuple(shape))
  return jax.tree.map(one, local, specs)


def shard_episodes(tree, mesh: Mesh):
  """Places a batch (episode axis first) sharded over the mesh; the axis must divide evenly."""
  n = mesh.devices.size
  for x in jax.tree.leaves(tree):
    if x.shape[0] % n:
      raise ValueError(f"meta-batch of {x.shape[0]} episodes does not divide over {n} devices")
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(AXIS)))


def replicate(tree, mesh: Mesh):
  """Every leaf replicated over the mesh (the same host value on every process)."""
  sh = NamedSharding(mesh, PartitionSpec())
  if jax.process_count() == 1:
    return jax.device_put(tree, sh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sh, np.asarray(x)), tree)


def to_host(x: Any) -> np.ndarray:
  """The host value of an array, also of a replicated one spanning several processes."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def local_copy(tree):
  """A replicated tree as arrays on this process's first device (no copy: its own shard), for
  the single-device programs (validation, evaluation)."""
  dev = jax.local_devices()[0]

  def one(x):
    if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
      assert x.is_fully_replicated, x.sharding
      return jax.device_put(x.addressable_data(0), dev)
    return x
  return jax.tree.map(one, tree)


def max_over_processes(n: int) -> int:
  """The largest of every process's ``n`` (``n`` itself on one process); every process calls it
  at the same point (it is a collective), e.g. the prompt width of an LLM batch whose rows the
  processes build apart (``mta_jax.llm.batches``)."""
  if jax.process_count() == 1:
    return int(n)
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return int(np.max(multihost_utils.process_allgather(np.asarray(n, np.int32))))


def sync(name: str) -> None:
  """A barrier of every process (no-op on one)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)
