"""What the entry points share: a bad input becomes one line on stderr and exit status 1.

A researcher who mistypes a flag, a config key, a flagfile or a dataset name should read one
line that says what is wrong and where, not a 40-line traceback. Only *expected* user errors
are shortened: flag-parsing errors, ``--config.<key>`` overrides the config does not have, config
files that do not load, and the exception types in ``USER_ERRORS``. Anything else is a bug and
keeps its traceback.

    import _cli
    _cli.check_flagfiles("meta_train", sys.argv)  # before DEFINE_config_file reads them
    ...
    if __name__ == "__main__":
      _cli.run(main, "meta_train", config_flags=("config",))

Every line reads ``<prog>: error: <what> ...``. ``tests/test_bad_inputs.py`` holds the catalogue.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import pathlib
import re
import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags
import ml_collections

from mta_jax.names import did_you_mean  # pylint: disable=unused-import  # (re-exported)

# Exception types whose message is the whole story (dotted names: nothing is imported here, so
# `--help` stays fast; an exception of one of these types means its module is already loaded).
USER_ERRORS = (
    "absl.app.UsageError",
    "mta_jax.run_config.ConfigError",
    "mta_jax.train.NonFiniteError",
    "mta_jax.checkpointing.CheckpointError",
    "mta_jax.sharding.MeshError",
    "mta_jax.data.DatasetNotFoundError",
    "mta_jax.data.DatasetFormatError",
    "mta_jax.models.weights.WeightsNotFoundError",
    "mta_jax.llm.weights.WeightsNotFoundError",
    "datasets_tfds.external_common.RawFileError",
)


def one_line(text: str) -> str:
  """Collapses a message onto one line; an embedded traceback keeps its head and last line."""
  lines = [l.strip() for l in str(text).splitlines() if l.strip()]
  if not lines:
    return ""
  if any(l.startswith("Traceback (most recent call last)") for l in lines):
    return f"{lines[0]} {lines[-1]}"  # config_flags quotes the config file's whole traceback
  return " ".join(lines)


def fail(prog: str, message: str) -> NoReturn:
  """Prints ``<prog>: error: <message>`` (one line) to stderr and exits with status 1."""
  sys.exit(f"{prog}: error: {one_line(message)}")


def is_user_error(exc: BaseException) -> bool:
  """Whether ``exc`` is one of ``USER_ERRORS`` (or a subclass)."""
  return any(f"{c.__module__}.{c.__qualname__}" in USER_ERRORS for c in type(exc).__mro__)


def git_commit() -> str:
  """The checkout's short commit, with ``+dirty`` when tracked files differ from it; "unknown"
  outside git. Recorded in every eval.json so each table cell can name the code behind it."""
  import subprocess  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(__file__).resolve().parents[1]
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return head + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------- flagfiles

def _siblings(path: str, pattern: str) -> list[str]:
  parent = pathlib.Path(path).parent
  return sorted(str(parent / p.name) for p in parent.glob(pattern)) if parent.is_dir() else []


def check_flagfiles(prog: str, argv: Sequence[str]) -> list[str]:
  """Exits with one line if a ``--flagfile`` (or one nested in it) cannot be read; else returns
  ``argv[1:]`` with every flagfile expanded.

  Call it before ``config_flags.DEFINE_config_file``, which expands flagfiles when it is defined
  and would otherwise die with a traceback at import time.
  """
  try:
    return flags.FLAGS.read_flags_from_files(list(argv[1:]), force_gnu=False)
  except flags.CantOpenFlagFileError as e:
    cause = e.__context__
    name = getattr(cause, "filename", None)
    if name is None:
      fail(prog, str(e))
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    hint = did_you_mean(str(name), _siblings(str(name), "*.flags"))
    fail(prog, f"--flagfile={name}: {reason}{hint} (relative paths resolve against the "
         f"working directory {os.getcwd()})")
  except flags.Error as e:
    fail(prog, str(e))


# ---------------------------------------------------------------------------- config overrides

def _flag_value(args: Sequence[str], name: str) -> str | None:
  """The last ``--name=value`` (or ``--name value``) in expanded ``args``."""
  value = None
  for i, a in enumerate(args):
    m = re.match(rf"^--?{re.escape(name)}(=(.*))?$", a)
    if m:
      value = m.group(2) if m.group(1) else (args[i + 1] if i + 1 < len(args) else None)
  return value


def _load_config(spec: str) -> ml_collections.ConfigDict:
  """``path[:arg]`` -> ``get_config(arg)``, loaded as config_flags loads it."""
  path, *arg = spec.split(":", 1)
  mod_spec = importlib.util.spec_from_file_location("_cli_config_module", path)
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  return module.get_config(*arg)


def _leaf_paths(config, prefix: str = "") -> list[str]:
  out = []
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      out += _leaf_paths(v, f"{prefix}{k}.")
    else:
      out.append(f"{prefix}{k}")
  return out


def _unknown_key_message(name: str, config, path: str) -> str | None:
  """One line if the override ``--name.path`` names a key ``config`` does not have."""
  node, seen = config, []
  for part in path.split("."):
    if isinstance(node, ml_collections.ConfigDict) and part in node:
      node, seen = node[part], seen + [part]
      continue
    where = ".".join([name] + seen)
    leaves = _leaf_paths(config)
    hint = difflib.get_close_matches(path, leaves, n=1)
    if not hint:  # a typo in the last part only: compare leaf names
      last = path.split(".")[-1]
      close = difflib.get_close_matches(last, [p.split(".")[-1] for p in leaves], n=1)
      hint = [p for p in leaves if close and p.split(".")[-1] == close[0]][:1]
    msg = f"--{name}.{path}: {where} has no key {part!r}"
    msg += f" (did you mean --{name}.{hint[0]}?)" if hint else ""
    if isinstance(node, ml_collections.ConfigDict):
      msg += f"; {where} has: {', '.join(node.keys())}"
    return msg
  return None


def _config_problem(argv: Sequence[str], config_names: Sequence[str]) -> str | None:
  """Why a config flag failed to parse, in one line (None if it is not a config problem)."""
  args = flags.FLAGS.read_flags_from_files(list(argv[1:]), force_gnu=False)
  for name in config_names:
    spec = _flag_value(args, name)
    if spec is None:
      continue
    path = spec.split(":", 1)[0]
    if not pathlib.Path(path).is_file():
      hint = did_you_mean(path, _siblings(path, "*.py"))
      return (f"--{name}={spec}: config file {path} does not exist{hint} (relative paths "
              f"resolve against the working directory {os.getcwd()})")
    try:
      config = _load_config(spec)
    except Exception as e:  # pylint: disable=broad-except
      return f"--{name}={spec}: {type(e).__name__}: {e}"
    for a in args:
      m = re.match(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)", a)
      msg = m and _unknown_key_message(name, config, m.group(1))
      if msg:
        return msg
  return None


def last_override_wins(args: Sequence[str], config_names: Sequence[str]) -> list[str]:
  """Drops every ``--<config>.<key>`` override that a later one of the same key replaces.

  ml_collections parses an override of a tuple field as a multi-flag, so a flagfile's
  ``--config.eval.seeds=(0,1,2)`` followed by ``--config.eval.seeds=(0,1,2,3,4)`` on the command
  line would give ``(0,1,2,0,1,2,3,4)``. Scalar overrides already end with the last value; this
  makes tuples do the same. ``args`` are flagfile-expanded; both ``--key=value`` and
  ``--key value`` forms (and ``--no<config>.<key>``) count as one occurrence of the key.
  """
  pattern = re.compile(rf"^--?(?:no)?({'|'.join(map(re.escape, config_names))})\.([^=]+)(=.*)?$")
  spans, i = [], 0  # (key or None, tokens)
  while i < len(args):
    m = pattern.match(args[i]) if config_names else None
    if m and m.group(3) is None and i + 1 < len(args) and not args[i + 1].startswith("-"):
      spans.append((f"{m.group(1)}.{m.group(2)}", args[i:i + 2]))  # --config.key value
      i += 2
      continue
    spans.append((f"{m.group(1)}.{m.group(2)}" if m else None, args[i:i + 1]))
    i += 1
  last = {key: n for n, (key, _) in enumerate(spans) if key is not None}
  return [t for n, (key, tokens) in enumerate(spans) if key is None or last[key] == n
          for t in tokens]


def flags_parser(prog: str, config_names: Sequence[str] = ()) -> Callable[[list], list]:
  """An ``app.run`` flags parser that reports every parsing problem in one line; a config
  override given twice (flagfile, then command line) takes its last value, tuples included."""

  def parse(argv: list) -> list:
    expanded = check_flagfiles(prog, argv)
    try:
      rest = flags.FLAGS(list(argv[:1]) + last_override_wins(expanded, config_names))
      for name in config_names:
        # A config file that fails to load is only reported when the config is first used.
        getattr(flags.FLAGS[name].value, "keys", None)
      return rest
    except flags.Error as e:
      fail(prog, f"{one_line(str(e))} (--helpshort lists the flags)")
    except (KeyError, AttributeError, OSError):
      problem = _config_problem(argv, config_names)
      if problem is None:
        raise  # not a bad input we recognise: keep the traceback
      fail(prog, problem)

  return parse


def run(main: Callable[[list], None], prog: str, config_flags: Sequence[str] = ()) -> None:
  """``app.run(main)`` with one-line errors for bad flags and for ``USER_ERRORS``."""

  def guarded(argv):
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      if not is_user_error(e):
        raise
      fail(prog, str(e))

  app.run(guarded, flags_parser=flags_parser(prog, config_flags))
