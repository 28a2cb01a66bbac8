r"""Meta-trains (or trains a baseline) from a config file and a flagfile of overrides.

    python experiments/meta_train.py --flagfile=experiments/flags/mta_sd.flags
    python experiments/meta_train.py --config=experiments/configs/mta.py:sd \
        --config.meta.inner_steps=5 --workdir=workdirs/mta_sd_steps5

Rerunning the same command resumes from the workdir's newest intact checkpoint. Exit codes:
0 done; 1 an error with a one-line message on stderr (unknown flag or config key, missing
flagfile, config value out of range, unknown or unbuilt dataset, non-finite loss, unusable
workdir or checkpoint; see experiments/_cli.py); 128+signal after SIGTERM/Ctrl-C (a checkpoint
was saved).
Relative paths (workdir, data_dir, cache_dir) resolve against the working directory.

Every local device is used (data parallel; --config.mesh.devices=N for fewer). Several hosts:
start the same command on each with --coordinator_address=HOST:PORT --num_processes=P
--process_id=I (or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID; SLURM and TPU
pods are detected); the workdir must be one shared folder. See README "More devices, more hosts".
"""

import datetime
import logging as std_logging
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import _cli  # experiments/_cli.py: bad input -> one line on stderr, exit status 1

# DEFINE_config_file expands --flagfile as it is defined: check the files exist first.
_cli.check_flagfiles("meta_train", sys.argv)
_CONFIG = config_flags.DEFINE_config_file("config", None, "A get_config(arg) file:arg.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the run writes everything.")
flags.mark_flags_as_required(["config", "workdir"])
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: HOST:PORT of process 0's coordinator "
    "(default $JAX_COORDINATOR_ADDRESS; unset = one host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Multi-host: number of processes ($JAX_NUM_PROCESSES).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "Multi-host: this process's id, 0..P-1 ($JAX_PROCESS_ID).")
_DIST_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", 300, "Multi-host: seconds to wait for the coordinator and every "
    "process before a one-line error.", lower_bound=1)


def _record_command(workdir: str) -> None:
  """Appends the date and this exact command line to <workdir>/command.txt (for the report)."""
  path = pathlib.Path(workdir)
  try:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "command.txt", "a", encoding="utf-8") as f:
      argv = [pathlib.Path(sys.argv[0]).as_posix()] + sys.argv[1:]
      f.write(f"{datetime.datetime.now().isoformat(timespec='seconds')}\tpython "
              f"{' '.join(argv)}\n")
  except OSError:
    pass  # An unwritable workdir is reported by the trainer with a clear error.


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Orbax logs every save step at INFO through absl's logger; our progress goes through the
  # standard root logger, which this leaves at INFO.
  std_logging.getLogger("absl").setLevel(std_logging.WARNING)
  # Imports after flag parsing: --help stays fast and JAX picks up the environment.
  from mta_jax import run_config, runtime, sharding  # pylint: disable=import-outside-toplevel
  try:
    runtime.setup_jax(distributed=sharding.DistributedSpec.from_env(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _DIST_TIMEOUT.value))
  except sharding.MeshError as e:
    raise run_config.ConfigError(str(e)) from None
  from mta_jax import train  # pylint: disable=import-outside-toplevel
  if sharding.is_primary():
    _record_command(_WORKDIR.value)
  # Bad config values, missing data, unusable workdirs or checkpoints and non-finite losses
  # raise the types in _cli.USER_ERRORS: _cli.run prints their one-line message and exits 1.
  try:
    summary = train.train(_CONFIG.value, _WORKDIR.value)
  except train.TrainingInterrupted as e:
    logging.warning("%s; rerun the same command to resume", e)
    sys.exit(128 + e.signum)
  logging.info("done: %s", {k: summary[k] for k in ("step", "best_val", "best_step")})
  if not sharding.is_primary():
    return
  print(f"done: step {summary['step']}, best validation accuracy {summary['best_val']:.4f} "
        f"at step {summary['best_step']} ({_WORKDIR.value})")


if __name__ == "__main__":
  _cli.run(main, "meta_train", config_flags=("config",))
