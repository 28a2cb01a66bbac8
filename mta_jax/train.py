"""The training loop of every trained row, as one library function ``train(config, workdir)`` over
an ``ml_collections`` config: every algorithm of ``mta_jax.algorithms`` (MTA = second-order MAML,
FOMAML, Reptile, ProtoNet, iMAML, SFT) for every learner (the encoder scorer here, the LLM's
LoRA in ``mta_jax.llm.trainer``; ``config.learner`` picks the set-up, default ``encoder``).

Guarantees (tested in ``tests/test_train.py`` and ``tests/test_meta_train_e2e.py``):
- **Resume, bit for bit.** The data of step ``s`` comes from ``numpy.random.default_rng((seed,
  s))`` and its key from ``fold_in(root, s)``; the step, parameters and optimiser state are in
  the checkpoint. A run killed at any point and rerun with the same command ends with the same
  parameters as an uninterrupted one (CPU, one device).
- **Resume order:** the workdir's newest intact checkpoint (corrupt ones are skipped with a
  warning), then ``config.init_from`` (another run's best meta-parameters), then the pretrained
  encoder.
- **Nothing lost:** SIGTERM and Ctrl-C finish the current step, save, and raise
  ``TrainingInterrupted``; a non-finite metric raises ``NonFiniteError`` naming the step and the
  metric before anything non-finite is saved; an unwritable or full workdir fails before
  training (``checkpointing.check_workdir``).
- **Every device.** ``config.mesh.devices`` (``"all"``, the default, or N) picks the devices of
  a one-axis mesh (``mta_jax.sharding``): the state is replicated, each step's batch is split
  over the devices (episodes on axis 0; SFT's query rows), XLA averages the gradients. One
  device in one process runs the unsharded program (bit for bit the single-device run). Under
  ``jax.distributed`` each process builds only its rows of the (seed, step) batch, process 0
  alone writes logs, metrics and config.json, and every process takes part in the Orbax saves.
  Checkpoints restore on any device count.

Fault injection for tests: ``MTA_FAULT_KILL_AT_STEP=k`` SIGKILLs the process right after step
``k`` (after its checkpoint, if any, has been *started*: an async save may be left partial).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import signal
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from mta_jax import algorithms, bilevel, checkpointing, inference, metrics_log, sharding
from mta_jax import params as P
from mta_jax.learner import Learner
from mta_jax.run_config import ConfigError, validate, validate_mesh



class NonFiniteError(FloatingPointError):
  """A metric became NaN or infinite; names the step and the metric."""


class TrainingInterrupted(KeyboardInterrupt):
  """SIGTERM or SIGINT arrived; a checkpoint of the last completed step was saved."""

  def __init__(self, signum: int, step: int):
    super().__init__(f"{signal.Signals(signum).name} at step {step}: checkpoint saved")
    self.signum, self.step = signum, step


# ---------------------------------------------------------------------------- helpers

def _check_finite(pending: list, last_saved: int, ckpt_dir: pathlib.Path) -> list:
  """Host copies of pending step metrics; raises on the first non-finite value."""
  rows = []
  for step, metrics in pending:
    host = {k: float(sharding.to_host(v)) for k, v in metrics.items()}
    for k, v in host.items():
      if not math.isfinite(v):
        raise NonFiniteError(
            f"non-finite {k} = {v} at step {step}; stopped. The last good checkpoint is step "
            f"{last_saved} in {ckpt_dir}")
    rows.append((step, host))
  return rows


class _SignalFlag:
  """Turns SIGTERM/SIGINT into a flag checked between steps (main thread only)."""

  def __init__(self):
    self.signum = None
    self._old = {}

  def __enter__(self):
    if hasattr(signal, "SIGTERM") and _is_main_thread():
      for s in (signal.SIGTERM, signal.SIGINT):
        self._old[s] = signal.signal(s, self._handle)
    return self

  def _handle(self, signum, _frame):
    if self.signum is None:
      logging.warning("%s received: saving a checkpoint after this step",
                      signal.Signals(signum).name)
    self.signum = signum

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)


def _is_main_thread() -> bool:
  import threading  # pylint: disable=import-outside-toplevel
  return threading.current_thread() is threading.main_thread()


def _init_from(state: dict, workdir: str) -> dict:
  """Copies another run's best meta-parameters (matching names and shapes) into ``state``."""
  bundle = inference.restore_for_inference(workdir, "best")
  taken = []
  for part, src in (("meta", bundle.meta["params"]), ("frozen", bundle.meta["params"])):
    dst = state["meta"]["params"] if part == "meta" else state["frozen"]
    for k in dst:
      if k in src and src[k].shape == dst[k].shape:
        dst[k] = jax.numpy.asarray(src[k], dst[k].dtype)
        taken.append(k)
  for k in state["meta"]["inner_lr"]:
    if k in bundle.meta["inner_lr"]:
      state["meta"]["inner_lr"][k] = jax.numpy.asarray(bundle.meta["inner_lr"][k])
  logging.info("init_from %s (step %d): %d tensors taken", workdir, bundle.step, len(taken))
  return state


# ---------------------------------------------------------------------------- set-ups

@dataclasses.dataclass
class Setup:
  """What a learner's set-up hands the training loop (everything model- and data-specific).

  ``sample(rng)`` is the batch of one step (its only randomness is ``rng``, which the loop draws
  from (seed, step): that is what makes resume bit-exact); ``validate(state)`` is the validation
  accuracy that picks the best checkpoint.
  """

  learner: Learner
  meta_cfg: bilevel.MetaConfig
  optimizer: Any
  sample: Callable[[np.random.Generator], Any]
  validate: Callable[[dict], float]
  steps: int  # total training steps
  # Optional: ``sample_rows(rng, rows)`` = the rows ``rows`` (a slice of the episode axis, or of
  # SFT's query rows) of ``sample(rng)``, built without the others (each process of a multi-host
  # run builds only its own); without it the trainer slices ``sample(rng)``.
  sample_rows: Callable[[np.random.Generator, slice], Any] | None = None


def rows_of(batch, rows: slice, episodic: bool):
  """The rows ``rows`` of a batch: episodes (axis 0), or SFT's query rows (axis 1)."""
  if episodic:
    return jax.tree.map(lambda x: x[rows], batch)
  return {k: jax.tree.map(lambda x: x[:, rows], v) if k == "query" else v
          for k, v in batch.items()}


def encoder_setup(config, workdir):
  """The encoder rows' set-up (``mta_jax.encoder_trainer.setup``)."""
  from mta_jax import encoder_trainer  # pylint: disable=import-outside-toplevel
  return encoder_trainer.setup(config, workdir)


def _llm_setup(config, workdir):
  from mta_jax.llm import trainer  # pylint: disable=import-outside-toplevel
  return trainer.setup(config, workdir)


SETUPS: dict[str, Callable[[ml_collections.ConfigDict, pathlib.Path], Setup]] = {
    "encoder": encoder_setup, "llm": _llm_setup}


# ---------------------------------------------------------------------------- devices

def _batch_key(config, kind: str, episodic: bool) -> str:
  """The config key of the number that is split over the devices."""
  if kind == "llm":
    return "meta.meta_batch" if episodic else "sft.batch_size"
  return "episodes.batch" if episodic else "sft.batch"


def _mesh(config, kind: str, episodic: bool):
  """(mesh or None, global batch rows) for ``config.mesh.devices``; one-line ``ConfigError``s."""
  key = _batch_key(config, kind, episodic)
  node = config
  for part in key.split("."):
    node = node[part]
  setting = (config.get("mesh") or {}).get("devices", "all")
  try:
    return sharding.make_mesh(setting, int(node), f"config.{key}"), int(node)
  except sharding.MeshError as e:
    msg = str(e)
    raise ConfigError(msg if msg.startswith("config.") else f"config.{msg}") from None


def _episodic(config) -> bool | None:
  try:
    return algorithms.get(config.meta.algorithm).episodic
  except Exception:  # pylint: disable=broad-except  # an unknown name: the set-up says which
    return None


class _NoWriter:
  """Processes other than 0 write no metrics."""

  def write(self, *_args, **_kwargs):
    pass

  def close(self):
    pass


# ---------------------------------------------------------------------------- train

def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains (or resumes) the run described by ``config`` in ``workdir``; returns a summary."""
  # ---------------------------------------------------------------- config & workdir
  kind = config.get("learner", "encoder")
  if kind not in SETUPS:
    from mta_jax.run_config import ConfigError, did_you_mean  # pylint: disable=import-outside-toplevel
    raise ConfigError(f"config.learner must be one of {', '.join(SETUPS)}, got {kind!r}"
                      f"{did_you_mean(kind, SETUPS)}")
  if kind == "encoder":
    validate(config)
  validate_mesh(config)
  episodic = _episodic(config)
  if episodic is not None:  # devices and batch checked before any data or model loads
    mesh, rows = _mesh(config, kind, episodic)
  workdir = checkpointing.check_workdir(workdir)
  setup = SETUPS[kind](config, workdir)  # reads and checks the data first, then the model
  if episodic is None:
    episodic = setup.meta_cfg.algo.episodic
    mesh, rows = _mesh(config, kind, episodic)
  primary = sharding.is_primary()
  cfg_dict = json.loads(config.to_json_best_effort())
  logging.info("workdir: %s\nconfig:\n%s", workdir, config)
  logging.info("seed: %d", config.seed)
  if mesh is not None:
    logging.info("mesh: %d devices (%s) in %d process(es); %d batch rows a step, %d a device",
                 mesh.devices.size, jax.devices()[0].platform, jax.process_count(), rows,
                 rows // mesh.devices.size)
  if primary:
    (workdir / "config.json").write_text(json.dumps(cfg_dict, indent=2, sort_keys=True))
  learner, meta_cfg, optimizer = setup.learner, setup.meta_cfg, setup.optimizer
  algo = meta_cfg.algorithm

  # ---------------------------------------------------------------- model & optimizer
  root_key = jax.random.key(config.seed)
  init_fn = lambda key: bilevel.init_train_state(learner, meta_cfg, optimizer, key)
  abstract = jax.eval_shape(init_fn, root_key)
  step_fn = bilevel.make_meta_train_step(learner, meta_cfg, optimizer, mesh)
  if mesh is None:
    key_of = lambda i: jax.random.fold_in(root_key, i)
  else:
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    key_of = jax.jit(lambda i: jax.random.fold_in(root_key, i), out_shardings=replicated)
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract))
  checkpointing.check_workdir(workdir, need_bytes=int(state_bytes * (config.keep_ckpts + 2)))

  # ---------------------------------------------------------------- checkpoint & resume
  # Several processes save synchronously: Orbax's background commit of one save and the next
  # save's barriers raced in the full test suite (an async_write_complete barrier timed out).
  ckpts = checkpointing.Checkpoints(workdir, keep=config.keep_ckpts,
                                    async_save=jax.process_count() == 1)
  if mesh is not None:  # restored straight onto the mesh, whatever count saved it
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                            abstract)
  restored = ckpts.restore_latest(abstract)
  book = {"best_val": -1.0, "best_step": -1}
  if restored is not None:
    state, record = restored
    book.update(record.get("train", {}))
    logging.info("resumed from %s at step %d", ckpts.latest.directory, record["step"])
  else:
    state = init_fn(root_key)
    if config.get("init_from"):
      state = _init_from(state, config.init_from)
    else:
      logging.info("initialised from the pretrained %s", learner.name)
    if mesh is not None:
      state = sharding.replicate(state, mesh)
  start = int(sharding.to_host(state["step"]))
  logging.info("parameters:\n%s", P.overview(sharding.local_copy(bilevel.full_meta(state))[
      "params"]))
  # ---------------------------------------------------------------- loop
  writer = metrics_log.MetricWriter(workdir, resume_step=start) if primary else _NoWriter()
  kill_at = int(os.environ.get("MTA_FAULT_KILL_AT_STEP", "-1"))
  pending: list = []
  last_saved = start if restored is not None else 0
  summary: dict = {}

  def save(step: int) -> None:
    nonlocal last_saved
    ckpts.save(step, state, {"config": cfg_dict, "train": book})
    last_saved = step

  def flush() -> None:
    for step, row in _check_finite(pending, last_saved, ckpts.latest.directory):
      writer.write(step, row)
      summary.update(row)
    pending.clear()

  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  total = setup.steps
  bar = tqdm(total=total, initial=start, desc=f"train {algo}", unit="step",
             dynamic_ncols=True, disable=not config.progress or not primary)

  def batch_of(i: int):
    rng = np.random.default_rng([config.seed, i])
    if mesh is None:
      return setup.sample(rng)
    if jax.process_count() == 1:
      local = setup.sample(rng)
    else:  # this process's rows only
      mine = sharding.process_rows(mesh, rows)
      local = (setup.sample_rows(rng, mine) if setup.sample_rows is not None else
               rows_of(setup.sample(rng), mine, episodic))
    return sharding.place_batch(local, mesh, sharding.batch_spec(local, episodic), rows)

  def validate_state(st) -> float:
    if mesh is None:
      return setup.validate(st)
    acc = setup.validate(sharding.local_copy(st))  # the single-device program, on each process
    if jax.process_count() > 1:  # every process takes process 0's value (one best checkpoint)
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      bits = np.frombuffer(np.float64(acc).tobytes(), np.int32)  # float64 exactly, without x64
      acc = float(np.frombuffer(np.asarray(multihost_utils.broadcast_one_to_all(bits),
                                           np.int32).tobytes(), np.float64)[0])
    return acc

  t0, n0 = time.perf_counter(), start
  try:
    with _SignalFlag() as sig:
      for i in range(start, total):
        batch = batch_of(i)
        state, metrics = step_fn(state, batch, key_of(i))
        step = i + 1
        pending.append((step, metrics))
        bar.update(1)
        last = step == total
        if step % config.log_every == 0 or last:
          rate = (step - n0) / max(time.perf_counter() - t0, 1e-9)
          pending[-1] = (step, dict(pending[-1][1], steps_per_s=rate))
          flush()
          bar.set_postfix(loss=f"{summary['outer/loss']:.3f}", acc=f"{summary['outer/acc']:.3f}")
        if step % config.eval_every == 0 or last:
          flush()
          acc = validate_state(state)
          if acc > book["best_val"]:
            book.update(best_val=acc, best_step=step)
            ckpts.save(step, state, {"config": cfg_dict, "train": book}, best=True)
          writer.write(step, {"val/acc": acc, "val/best": book["best_val"]})
          summary.update({"val/acc": acc})
          logging.info("step %d: val/acc %.4f (best %.4f at %d)", step, acc, book["best_val"],
                       book["best_step"])
        if step % config.ckpt_every == 0 or last:
          flush()
          save(step)
        if step == kill_at:
          os.kill(os.getpid(), signal.SIGKILL)
        if sig.signum is not None:
          flush()
          if last_saved != step:
            save(step)
          ckpts.wait()
          raise TrainingInterrupted(sig.signum, step)
  finally:
    bar.close()
    ckpts.wait()
    ckpts.close()
    writer.close()
  summary.update(step=int(sharding.to_host(state["step"])), best_val=book["best_val"],
                 best_step=book["best_step"])
  return summary
