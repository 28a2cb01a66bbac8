"""Device meshes for the episode axis, and multi-host start-up.

The meta-batch is data-parallel: episodes are sharded over every device of a one-axis mesh named
``"episodes"``, parameters and optimiser state are replicated, and XLA inserts the all-reduce of
the mean gradient. No ``pmap``: ``jax.jit`` with ``NamedSharding`` does it all.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "episodes"


def maybe_initialize_distributed() -> None:
  """Calls ``jax.distributed.initialize()`` when a multi-host launch is configured.

  Cluster environments (SLURM, TPU pods, ``JAX_COORDINATOR_ADDRESS``) are auto-detected by JAX;
  on a single host this is a no-op.
  """
  if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("SLURM_JOB_ID") or (
      os.environ.get("TPU_WORKER_HOSTNAMES")):
    jax.distributed.initialize()


def episode_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices along the episode axis."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  return Mesh(devices.reshape(-1), (AXIS,))


def shard_episodes(tree, mesh: Mesh):
  """Places a batch (episode axis first) sharded over the mesh; the axis must divide evenly."""
  n = mesh.devices.size
  for x in jax.tree.leaves(tree):
    if x.shape[0] % n:
      raise ValueError(f"meta-batch of {x.shape[0]} episodes does not divide over {n} devices")
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(AXIS)))


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
