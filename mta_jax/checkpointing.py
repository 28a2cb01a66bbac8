"""Orbax checkpoints of a training run: periodic, best-by-validation, verified, with fallback.

Layout of a workdir::

    <workdir>/checkpoints/<step>/{state,config}   the last ``keep`` periodic saves
    <workdir>/best/<step>/{state,config}          the best by validation accuracy (one)

Each save is ``Composite(state=StandardSave(train_state), config=JsonSave(record))``; the JSON
record holds the run's config, the trainer's bookkeeping (best validation accuracy, ...) and a
SHA-256 of the state's bytes. Restores use ``StandardRestore`` with an abstract tree (from
``jax.eval_shape`` while training, from the checkpoint's own metadata for inference) and then
check the hash, so a truncated file, a missing folder or flipped bytes are all detected: the
trainer falls back to the newest intact step with a warning naming what it skipped.

All Orbax calls of the project live here (``stack.md``: keep Orbax behind one small module).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import shutil
import uuid
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


LATEST, BEST = "checkpoints", "best"
WHICH = ("best", "latest")


class CheckpointError(RuntimeError):
  """No usable checkpoint (missing, corrupt or incompatible), or an unusable workdir."""


def _path_name(path) -> str:
  parts = []
  for k in path:
    parts.append(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))))
  return "/".join(parts)


def state_digest(tree: Any) -> str:
  """SHA-256 over every leaf's path, dtype, shape and bytes, in sorted path order.

  Paths are written as plain names (dict key, attribute name or index), so an optax state
  restored without its classes (lists and dicts, as for inference) has the same digest.
  """
  h = hashlib.sha256()
  leaves = [(_path_name(p), x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]
  for name, leaf in sorted(leaves, key=lambda t: t[0]):
    a = _host(leaf)
    h.update(f"{name}:{a.dtype}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def _host(leaf) -> np.ndarray:
  """A leaf's host value; a replicated array of a multi-process run is read from its own copy."""
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    from mta_jax import sharding  # pylint: disable=import-outside-toplevel
    return sharding.to_host(leaf)
  return np.asarray(leaf)


def check_workdir(workdir: str | os.PathLike, need_bytes: int = 0) -> pathlib.Path:
  """Creates ``workdir`` and proves it writable with room for ``need_bytes``, before training.

  Raises ``CheckpointError`` naming the path and the problem (not writable, not a folder, disk
  full), so a run never trains for hours and then fails at its first save.
  """
  path = pathlib.Path(workdir).absolute()
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write_probe_{uuid.uuid4().hex}"
    with open(probe, "wb") as f:
      f.write(b"\0" * 4096)
      f.flush()
      os.fsync(f.fileno())
    probe.unlink()
  except OSError as e:
    raise CheckpointError(f"workdir {path} is not writable: {e.strerror or e}") from e
  free = shutil.disk_usage(path).free
  if need_bytes and free < need_bytes:
    raise CheckpointError(f"workdir {path}: only {free / 2**20:.0f} MiB free on its disk, the "
                          f"checkpoints need about {need_bytes / 2**20:.0f} MiB")
  return path


def _manager(folder: pathlib.Path, keep: int, async_save: bool) -> ocp.CheckpointManager:
  # Each manager's barriers get their own prefix (its folder's name). Orbax names a save's
  # coordination-service barriers after the step's folder ("async_write_complete.<step>"), so
  # without one the periodic and the best manager, which both save step N, met at one barrier
  # from two background threads of every process ("Barrier ... is already ongoing", which Orbax
  # reports as "Timed out while waiting for async_write_complete barrier") whenever their
  # commits overlapped in a multi-process run (tests/test_distributed.py).
  opts = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=f"mta_{folder.name}"))
  return ocp.CheckpointManager(folder, options=opts)


class Checkpoints:
  """The periodic and the best checkpoint managers of one workdir."""

  def __init__(self, workdir: str | os.PathLike, keep: int = 3, async_save: bool = True):
    self.workdir = pathlib.Path(workdir).absolute()  # Orbax requires absolute paths
    self.latest = _manager(self.workdir / LATEST, keep, async_save)
    self.best = _manager(self.workdir / BEST, 1, async_save)

  def save(self, step: int, state: Any, record: dict, best: bool = False) -> None:
    """Saves ``state`` at ``step`` (periodic, or the best one); ``record`` must be JSON-able."""
    record = dict(record, step=int(step), digest=state_digest(state))
    mgr = self.best if best else self.latest
    if step in mgr.all_steps():  # Orbax silently skips an existing step: make it explicit.
      logging.info("checkpoint: step %d already saved in %s", step, mgr.directory)
      return
    mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                           config=ocp.args.JsonSave(record)))

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()

  def restore_latest(self, abstract_state: Any) -> tuple[Any, dict] | None:
    """(state, record) of the newest intact periodic checkpoint, or None if there is none.

    Unreadable or corrupt steps are skipped with a warning that names them; if every step is
    unreadable, raises ``CheckpointError`` rather than silently training from scratch.
    """
    steps = sorted(self.latest.all_steps(), reverse=True)
    if not steps:
      return None
    skipped = []
    for step in steps:
      try:
        out = _restore(self.latest, step, abstract_state)
      except CheckpointError as e:
        skipped.append(str(e))
        continue
      for bad_step, why in zip(steps, skipped):
        moved = self._quarantine(bad_step)
        logging.warning("checkpoint: skipped step %d (%s); moved it to %s; resuming from step "
                        "%d", bad_step, why, moved, step)
      return out
    raise CheckpointError(f"no intact checkpoint in {self.latest.directory}: " +
                          " | ".join(skipped))

  def _quarantine(self, step: int) -> pathlib.Path:
    """Moves a corrupt step aside (kept for inspection), so the resumed run can save it anew.
    In a multi-process run process 0 moves it and the others wait for it."""
    src = pathlib.Path(self.latest.directory) / str(step)
    dst = self.workdir / "corrupt_checkpoints" / f"{step}-{uuid.uuid4().hex[:8]}"
    if jax.process_index() == 0:
      dst.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(str(src), str(dst))
    if jax.process_count() > 1:
      from mta_jax import sharding  # pylint: disable=import-outside-toplevel
      sharding.sync(f"quarantine-{step}")
    self.latest.reload()
    return dst


def _restore(mgr: ocp.CheckpointManager, step: int, abstract_state: Any | None):
  """Restores and verifies one step; any failure becomes a one-line ``CheckpointError``."""
  path = pathlib.Path(mgr.directory) / str(step)
  try:
    if abstract_state is None:
      meta = mgr.item_metadata(step)["state"]
      tree = meta.tree if hasattr(meta, "tree") else meta
      # On this process's first device, whatever device count saved it (Orbax would otherwise
      # ask for the saving run's topology).
      dev = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      abstract_state = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=dev), tree)
    out = mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), config=ocp.args.JsonRestore()))
    state, record = out["state"], out["config"]
  except Exception as e:  # pylint: disable=broad-except  # Orbax/tensorstore raise many types.
    msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    raise CheckpointError(f"checkpoint {path} is unreadable: {type(e).__name__}: {msg}") from e
  if not isinstance(record, dict) or "digest" not in record:
    raise CheckpointError(f"checkpoint {path} has no integrity record (config/ is missing or "
                          "was not written by mta_jax)")
  if state_digest(state) != record["digest"]:
    raise CheckpointError(f"checkpoint {path} is corrupt: its arrays do not match the digest "
                          "saved with them")
  return state, record


# ---------------------------------------------------------------------------- reading a run

def restore_newest(workdir: str | os.PathLike, which: str = "best") -> tuple[Any, dict, int]:
  """(state, record, step) of the best (or latest) checkpoint of a run, verified.

  ``which="best"`` falls back to the latest periodic checkpoint when the run has no best one.
  Raises ``CheckpointError`` naming the path and the problem when there is no checkpoint or it
  is corrupt. Shapes come from the checkpoint's own metadata (no model needed); what the state
  means is ``mta_jax.inference``'s business.
  """
  if which not in WHICH:
    raise ValueError(f"which must be one of {WHICH}, got {which!r}")
  root = pathlib.Path(workdir).absolute()
  order = (BEST, LATEST) if which == "best" else (LATEST,)
  for sub in order:
    folder = root / sub
    if not folder.is_dir():
      continue
    mgr = ocp.CheckpointManager(folder, options=ocp.CheckpointManagerOptions(
        create=False, read_only=True), item_handlers={  # handlers: item_metadata reads shapes
            "state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler()})
    try:
      step = mgr.latest_step()
      if step is None:
        continue
      state, record = _restore(mgr, step, None)
    finally:
      mgr.close()
    if not isinstance(record.get("config"), dict):
      raise CheckpointError(f"checkpoint {folder / str(step)} holds no run config")
    return state, record, int(step)
  raise CheckpointError(f"no checkpoint in {root} (looked for {' and '.join(order)}/<step>/)")
