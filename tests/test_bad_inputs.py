"""The catalogue of bad inputs: each gets a one-line error that says what is wrong and where.

Config checks run in-process on config objects (no training, no encoder); the entry points run
as subprocesses only where the point is what the user of the command line reads: one line on
stderr, ``<prog>: error: ...``, exit status 1, no traceback. ``WORKSPACE.md`` ("Bad inputs and
their errors") lists every item with its test. Raw-data errors of the TFDS builders are tested
here on synthetic files and, per builder, on the real raw files in each builder's test.
"""

import ast
import hashlib
import json
import logging
import os
import pathlib
import re
import subprocess
import sys

import pytest

from datasets_tfds import external_common as ec
from mta_jax import data, run_config, train

# pylint: disable-next=wrong-import-order
from test_train import ROOT, mta, write_small_dataset

sys.path.insert(0, str(ROOT / "experiments"))
import _cli  # pylint: disable=wrong-import-position


def _cli_run(script: str, *args, timeout=120) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
  return subprocess.run([sys.executable, *(["-c", script] if "\n" in script else
                                           [f"experiments/{script}"]), *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                        check=False)


def _one_line_error(proc: subprocess.CompletedProcess, prog: str, progress=None) -> str:
  """The error line, after checking: exit 1, exactly one line on stderr, no traceback (other
  lines only if they match the regex ``progress``: warnings logged while working)."""
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  if progress:
    lines = [l for l in lines if not re.search(progress, l)]
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr[-3000:]
  return lines[0]


# ---------------------------------------------------------------------------- flags (CLI)

def test_unknown_flag_suggests_the_flag():
  line = _one_line_error(_cli_run("meta_train.py", "--flagfile=experiments/flags/demo.flags",
                                  "--workdirr=/tmp/x"), "meta_train")
  assert "Unknown command line flag 'workdirr'. Did you mean: workdir ?" in line


@pytest.mark.parametrize("override,want", [
    ("--config.inner.stepz=3",
     "--config.inner.stepz: config has no key 'inner' (did you mean --config.meta.inner_steps?)"),
    ("--config.meta.inner_stepz=3", "--config.meta.inner_stepz: config.meta has no key "
     "'inner_stepz' (did you mean --config.meta.inner_steps?); config.meta has: algorithm,"),
], ids=["unknown_section", "unknown_leaf"])
def test_unknown_config_key_suggests_the_key(override, want):
  line = _one_line_error(_cli_run("meta_train.py", "--flagfile=experiments/flags/demo.flags",
                                  override), "meta_train")
  assert want in line


def test_config_override_of_the_wrong_type_names_flag_and_value():
  line = _one_line_error(_cli_run("meta_train.py", "--flagfile=experiments/flags/demo.flags",
                                  "--config.meta.inner_steps=abc"), "meta_train")
  assert "flag --config.meta.inner_steps=abc: invalid literal for int()" in line


def test_missing_flagfile_is_named_with_a_suggestion(tmp_path):
  line = _one_line_error(_cli_run("meta_train.py", "--flagfile=experiments/flags/demoo.flags"),
                         "meta_train")
  assert ("--flagfile=experiments/flags/demoo.flags: No such file or directory (did you mean "
          "'experiments/flags/demo.flags'?)") in line
  assert f"working directory {ROOT}" in line
  # A flagfile that includes a missing one: the missing one is named.
  outer = tmp_path / "outer.flags"
  outer.write_text(f"--flagfile={tmp_path / 'inner.flags'}\n")
  line = _one_line_error(_cli_run("evaluate.py", f"--flagfile={outer}"), "evaluate")
  assert f"--flagfile={tmp_path / 'inner.flags'}: No such file or directory" in line


def test_missing_config_file_is_named_with_a_suggestion():
  line = _one_line_error(_cli_run("meta_train.py", "--config=experiments/configs/mt.py:sd",
                                  "--workdir=/tmp/unused", "--config.seed=1"), "meta_train")
  assert ("config file experiments/configs/mt.py does not exist (did you mean "
          "'experiments/configs/mta.py'?)") in line


def test_unknown_config_arg_token_is_one_line():
  line = _one_line_error(_cli_run("meta_train.py", "--config=experiments/configs/mta.py:sdd",
                                  "--workdir=/tmp/unused"), "meta_train")
  assert "ValueError: mta.py: unknown config arg token(s) ['sdd']; known: sd, cd" in line


def test_missing_required_flag_is_named():
  line = _one_line_error(_cli_run("meta_train.py", "--config=experiments/configs/mta.py:sd"),
                         "meta_train")
  assert "Flag --workdir must have a value other than None" in line


def test_a_config_override_given_twice_takes_its_last_value_tuples_included():
  # ml_collections parses tuple overrides as a multi-flag: without last_override_wins the two
  # seeds overrides below would concatenate to (0, 1, 2, 4).
  args = ["--config=c.py:base", "--config.eval.seeds=(0,1,2)", "--workdir=w",
          "--config.eval.batch_size", "8", "--noconfig.progress",
          "--config.eval.seeds=(4,)", "--config.progress=true", "--config.eval.batch_size=2"]
  assert _cli.last_override_wins(args, ("config",)) == [
      "--config=c.py:base", "--workdir=w", "--config.eval.seeds=(4,)", "--config.progress=true",
      "--config.eval.batch_size=2"]
  assert _cli.last_override_wins(args, ()) == args


def test_llm_select_command_line_tuple_replaces_the_flagfiles():
  # llm_base.flags sets seeds (0,1,2) and generate_seeds (0,): with seeds replaced by (3,),
  # generate_seeds is no longer a subset, and the error shows seeds really became (3,).
  line = _one_line_error(_cli_run("llm_select.py", "--flagfile=experiments/flags/llm_base.flags",
                                  "--config.eval.seeds=(3,)", "--workdir=/nonexistent/x"),
                         "llm_select")
  assert "config.eval.generate_seeds: 0 is not one of 3" in line


@pytest.mark.parametrize("override,message", [
    ("--config.eval.datasets=('apibenhc',)",
     "config.eval.datasets: 'apibenhc' is not one of mta_tools, metatool, api_bank, toolalpaca, "
     "apibench (did you mean 'apibench'?)"),
    ("--config.eval.modes=('sd','xd')",
     "config.eval.modes: 'xd' is not one of sd, cd, hard5, hard10"),
    ("--config.eval.max_queries_by_dataset.apibench=-2",
     "config.eval.max_queries_by_dataset.apibench must be >= -1, got -2"),
])
def test_llm_select_bad_config_value_is_one_line(override, message):
  line = _one_line_error(_cli_run("llm_select.py", "--flagfile=experiments/flags/llm_base.flags",
                                  override, "--workdir=/nonexistent/x"), "llm_select")
  assert line == f"llm_select: error: {message}"


# ---------------------------------------------------------------------------- config values

def _config(arg="sd", **overrides):
  c = mta.get_config(arg)
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


@pytest.mark.parametrize("arg,key,value,message", [
    ("sd", "total_steps", -3, "config.total_steps must be >= 1, got -3"),
    ("sd", "ckpt_every", 0, "config.ckpt_every must be >= 1, got 0"),
    ("sd", "episodes.batch", 0, "config.episodes.batch must be >= 1, got 0"),
    ("sd", "optim.warmup_steps", -1, "config.optim.warmup_steps must be >= 0, got -1"),
    ("sd", "meta.inner_steps", 0, "config.meta.inner_steps must be >= 1 for maml, got 0"),
    ("sd,reptile", "meta.inner_steps", 0,
     "config.meta.inner_steps must be >= 1 for reptile, got 0"),
    ("sd", "meta.inner_lr", 0.0, "config.meta.inner_lr must be > 0, got 0.0"),
    ("sd", "scorer.temperature", 0.0, "config.scorer.temperature must be > 0, got 0.0"),
    ("sd", "scorer.temperature", -0.5, "config.scorer.temperature must be > 0, got -0.5"),
    ("sd", "optim.lr", -1e-3, "config.optim.lr must be >= 0, got -0.001"),
    ("sd", "optim.clip_norm", 0.0, "config.optim.clip_norm must be > 0, got 0.0"),
    ("sd", "scorer.n_top", 7, "config.scorer.n_top must be in [0, 6], got 7"),
    ("sd", "episodes.q_query", 0, "config.episodes.q_query must be >= 1, got 0"),
    ("sd", "episodes.k_shot", -1, "config.episodes.k_shot must be >= 0, got -1"),
    ("sd", "episodes.n_way", 1, "config.episodes.n_way must be >= 2, got 1"),
    ("sd", "eval.seeds", 0, "config.eval.seeds must be >= 1, got 0"),
    ("sd", "episodes.n_views", 6,
     "config.episodes.n_views=6 is more than the config.features.n_views=4 views cached"),
    ("sd", "meta.algorithm", "mamll", "config.meta.algorithm must be one of sft, protonet, "
     "fomaml, reptile, maml, imaml, got 'mamll' (did you mean 'maml'?)"),
    ("sd", "meta.learn_inner_lr", "per_tensr", "config.meta.learn_inner_lr must be one of "
     "fixed, per_tensor, per_element, got 'per_tensr' (did you mean 'per_tensor'?)"),
    ("sd", "scorer.adapt", "heda", "config.scorer.adapt must be one of none, head, lora, "
     "lora+head, top, top+head, head+mix, top+head+mix or a regex over parameter names, got "
     "'heda' (did you mean "
     "'head'?)"),
    ("sd", "scorer.adapt", "^(head", "config.scorer.adapt '^(head' is not a valid regex"),
    ("sd,top", "scorer.adapt", "lora+head",
     "config.scorer.adapt uses LoRA but scorer.lora_rank is 0: set lora_rank >= 1"),
    ("sd", "episodes.mode", "xd", "config.episodes.mode must be one of sd, cd, got 'xd'"),
    ("sd", "eval.mode", "cdd", "config.eval.mode must be one of sd, cd, got 'cdd' (did you "
     "mean 'cd'?)"),
    ("sd", "dataset", "mta_tool", "config.dataset must be one of mta_tools, metatool, "
     "api_bank, toolalpaca, apibench or several joined by '+', got 'mta_tool' (did you mean "
     "'mta_tools'?)"),
    ("sd", "dataset", "mta_tools+metatol", "config.dataset must be one of mta_tools, "
     "metatool, api_bank, toolalpaca, apibench or several joined by '+', got "
     "'mta_tools+metatol' (did you mean 'metatool'?)"),
    ("sd", "init_from", "/nonexistent/run", "config.init_from='/nonexistent/run' is not a "
     "folder"),
], ids=lambda x: str(x) if not isinstance(x, str) or len(x) < 25 else None)
def test_config_value_out_of_range_or_unknown_is_named(arg, key, value, message):
  with pytest.raises(run_config.ConfigError) as err:
    run_config.validate(_config(arg, **{key: value}))
  assert message in str(err.value)
  assert "\n" not in str(err.value)


def _flagfile_config(path: pathlib.Path):
  """The config a mta.py flagfile describes: its --config arg plus its --config.* overrides."""
  lines = [l.strip() for l in path.read_text().splitlines() if l.strip().startswith("--")]
  arg = next(l.split("=", 1)[1] for l in lines if l.startswith("--config="))
  config = mta.get_config(arg.split(":", 1)[1] if ":" in arg else "sd")
  for line in lines:
    m = re.match(r"--config\.([^=]+)=(.*)", line)
    if m:
      assert _cli._unknown_key_message("config", config, m.group(1)) is None, (path, line)
      try:
        value = ast.literal_eval(m.group(2))
      except (ValueError, SyntaxError):
        value = m.group(2)
      node = config
      *parents, last = m.group(1).split(".")
      for p in parents:
        node = node[p]
      node[last] = value
  return config


@pytest.mark.parametrize("path", sorted(
    p.name for p in (ROOT / "experiments" / "flags").glob("*.flags")
    if "configs/mta.py" in p.read_text()))
def test_every_committed_flagfile_has_known_keys_and_valid_values(path):
  # The checks above must not reject what the project itself runs.
  run_config.validate(_flagfile_config(ROOT / "experiments" / "flags" / path))


@pytest.mark.parametrize("arg", ["sd", "cd", "sd,top", "sd,demo", "sd,smoke", "sd,fomaml",
                                 "sd,reptile", "sd,protonet", "sd,sft", "cd,top,smoke"])
def test_every_config_variant_validates(arg):
  run_config.validate(mta.get_config(arg))


def test_bad_config_value_reaches_the_cli_user_as_one_line(tmp_path):
  line = _one_line_error(_cli_run("meta_train.py", "--flagfile=experiments/flags/demo.flags",
                                  "--config.meta.inner_steps=0", f"--workdir={tmp_path}"),
                         "meta_train")
  assert line == "meta_train: error: config.meta.inner_steps must be >= 1 for maml, got 0"


# ---------------------------------------------------------------------------- config vs. data

@pytest.fixture(scope="module")
def small(tmp_path_factory):
  """3 training tools a domain (7 domains), 8 queries a tool."""
  d = write_small_dataset(tmp_path_factory.mktemp("small"))
  return d, data.from_jsonl(d)


@pytest.mark.parametrize("overrides,message", [
    (dict(n_way=4), "config.episodes.n_way=4 is larger than the 3 tools of the pool's largest "
     "group (mode 'sd' draws all candidates from one group; the pool has 21 tools): lower "
     "episodes.n_way or set episodes.mode='cd' (the 21 training tools of mta_tools)"),
    (dict(n_way=22, mode="cd"), "config.episodes.n_way=22 is larger than the 21 tools of the "
     "pool: lower episodes.n_way (the 21 training tools of mta_tools)"),
    (dict(n_way=3, k_shot=4, q_query=5), "config.episodes.k_shot + episodes.q_query = 4 + 5 = 9"
     " is more than the 8 queries of the pool's tool with the fewest: lower them (the 21 "
     "training tools of mta_tools; fewest queries: '"),
], ids=["N_over_group_size", "N_over_pool_size", "K_plus_Q_over_queries_per_tool"])
def test_episode_shape_larger_than_the_data_is_named(small, overrides, message):
  _, ds = small
  c = _config("sd", **{f"episodes.{k}": v for k, v in overrides.items()})
  run_config.validate(c)  # the config alone is fine: only the data says no
  with pytest.raises(run_config.ConfigError) as err:
    run_config.validate_data(c, ds)
  assert message in str(err.value)


def test_k_plus_q_error_names_the_tool_with_the_fewest_queries(small, tmp_path):
  d = _jsonl_copy(small[0], tmp_path / "ds")
  tools = [json.loads(l) for l in (d / "tools.jsonl").read_text().splitlines()]
  victim = [t for t in tools if t["split"] == "train"][4]
  qa = [json.loads(l) for l in (d / "qa.jsonl").read_text().splitlines()]
  qa = [q for i, q in enumerate(qa) if q["tool_index"] != victim["index"] or i % 8 < 6]
  (d / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qa))
  c = _config("sd", **{"episodes.n_way": 3, "episodes.k_shot": 2, "episodes.q_query": 5})
  with pytest.raises(run_config.ConfigError) as err:
    run_config.validate_data(c, data.from_jsonl(d))
  assert str(err.value).endswith(f"= 7 is more than the 6 queries of the pool's tool with the "
                                 f"fewest: lower them (the 21 training tools of mta_tools; "
                                 f"fewest queries: {victim['name']!r})")


def test_dataset_without_training_tools_is_named(tmp_path):
  d = write_small_dataset(tmp_path, per_split=(("test", 2),))
  with pytest.raises(run_config.ConfigError, match=r"config.dataset='mta_tools' has 0 training tools "
                     r"\(split 'train'\); training needs at least 2"):
    run_config.validate_data(_config("sd"), data.from_jsonl(d))


def test_data_checks_run_before_the_encoder_loads(small, tmp_path, monkeypatch):
  from mta_jax import models  # pylint: disable=import-outside-toplevel

  def no_encoder():
    raise AssertionError("the encoder was loaded before the data checks")
  monkeypatch.setattr(models.TextEncoder, "pretrained", staticmethod(no_encoder))
  c = _config("sd,smoke", data_dir=str(small[0]), **{"episodes.n_way": 4})
  with pytest.raises(run_config.ConfigError, match="episodes.n_way=4 is larger than the 3 tools"):
    train.train(c, tmp_path / "run")


# ---------------------------------------------------------------------------- datasets

def test_unknown_dataset_name_suggests_the_name(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load("toolalpacca", tmp_path)
  assert str(err.value) == ("unknown dataset 'toolalpacca' (did you mean 'toolalpaca'?); known: "
                            "mta_tools, metatool, api_bank, toolalpaca, apibench")


def test_dataset_not_built_says_how_to_build_it(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load("metatool", tmp_path)
  assert str(err.value) == (
      f"dataset 'metatool' is not built in {tmp_path}: build it with `python -m "
      f"datasets_tfds.build --data_dir={tmp_path} --datasets=metatool` (or `make data`)")


def test_dataset_not_built_reaches_the_cli_user_as_one_line(tmp_path):
  line = _one_line_error(_cli_run(
      "meta_train.py", "--flagfile=experiments/flags/demo.flags",
      f"--config.data_dir={tmp_path / 'no_data'}", f"--workdir={tmp_path / 'run'}"),
      "meta_train")
  assert (f"dataset 'mta_tools' is not built in {tmp_path / 'no_data'}: build it with `python -m "
          f"datasets_tfds.build --data_dir={tmp_path / 'no_data'} --datasets=mta_tools`") in line


def _jsonl_copy(small_dir: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
  dst.mkdir()
  for name in ("tools.jsonl", "qa.jsonl"):
    (dst / name).write_text((small_dir / name).read_text())
  return dst


def _edit_line(path: pathlib.Path, n: int, fn) -> None:
  lines = path.read_text().splitlines()
  lines[n - 1] = fn(lines[n - 1])
  path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("file,line,edit,wants", [
    ("qa.jsonl", 3, lambda l: l[:40], [":3: not valid JSON ("]),
    ("tools.jsonl", 2, lambda l: json.dumps({k: v for k, v in json.loads(l).items()
                                             if k != "domain"}),
     [":2: missing field(s) domain"]),
    ("qa.jsonl", 5, lambda l: json.dumps(dict(json.loads(l), tool_index=999)),
     [": query '", "' has tool_index 999, but tools.jsonl has 42 tools"]),
    ("tools.jsonl", 4, lambda l: json.dumps(dict(json.loads(l), index=17)),
     [": record 4 has index 17; tool indices must be 0, 1, 2, ... in file order"]),
], ids=["truncated_record", "missing_field", "unknown_tool_index", "tool_index_out_of_order"])
def test_malformed_jsonl_dataset_names_file_and_line(small, tmp_path, file, line, edit, wants):
  d = _jsonl_copy(small[0], tmp_path / "ds")
  _edit_line(d / file, line, edit)
  with pytest.raises(data.DatasetFormatError) as err:
    data.from_jsonl(d)
  msg = str(err.value)
  assert msg.startswith(f"{d / file}{wants[0]}") and all(w in msg for w in wants), msg
  assert "\n" not in msg


def test_jsonl_dataset_without_qa_file_is_named(small, tmp_path):
  d = _jsonl_copy(small[0], tmp_path / "ds")
  (d / "qa.jsonl").unlink()
  with pytest.raises(data.DatasetNotFoundError, match=r"qa.jsonl does not exist \(a JSONL "
                     r"dataset folder holds tools.jsonl and qa.jsonl\)"):
    run_config.load_dataset("mta_tools", str(d))


# ---------------------------------------------------------------------------- evaluate.py

def test_evaluate_unknown_dataset_suggests_the_name(tmp_path):
  line = _one_line_error(_cli_run("evaluate.py", f"--workdir={tmp_path}",
                                  "--datasets=mta_tools,api_bnk"), "evaluate")
  assert line == ("evaluate: error: unknown dataset 'api_bnk' (did you mean 'api_bank'?); "
                  "known: mta_tools, metatool, api_bank, toolalpaca, apibench")


def test_evaluate_unknown_shot_setting_is_named(tmp_path):
  line = _one_line_error(_cli_run("evaluate.py", f"--workdir={tmp_path}", "--shots=0shot,k55"),
                         "evaluate")
  assert line == "evaluate: error: --shots: unknown setting 'k55' (did you mean 'k5'?); known: " \
                 "0shot, k1, k5"


def test_evaluate_workdir_without_checkpoint_is_named(tmp_path):
  line = _one_line_error(_cli_run("evaluate.py", f"--workdir={tmp_path}"), "evaluate")
  assert f"no checkpoint in {tmp_path}" in line


def test_evaluate_with_no_dataset_built_says_how_to_build(tmp_path):
  line = _one_line_error(_cli_run("evaluate.py", "--baseline=random", f"--workdir={tmp_path}",
                                  "--datasets=metatool", f"--data_dir={tmp_path / 'none'}"),
                         "evaluate", progress=r"^W.* skipping metatool: dataset 'metatool' is not")
  assert line.startswith("evaluate: error: nothing to evaluate: dataset 'metatool' is not built")
  assert f"--data_dir={tmp_path / 'none'} --datasets=metatool`" in line
  assert not (tmp_path / "eval.json").exists()


# ---------------------------------------------------------------------------- raw data (TFDS)

def _raw(tmp_path, content: bytes, pinned: bytes, name="api.json") -> tuple:
  path = tmp_path / name
  path.write_bytes(content)
  raw = ec.RawFile(name=name, url=f"https://example.org/pinned/{name}", size=len(pinned),
                   sha256=hashlib.sha256(pinned).hexdigest())
  return path, raw


def test_altered_raw_file_names_file_expected_sha256_and_what_to_do(tmp_path):
  pinned = b'[{"api": "x"}]\n'
  path, raw = _raw(tmp_path, pinned[:-4], pinned)  # a truncated copy
  with pytest.raises(ec.RawFileError) as err:
    ec.verify(path, raw, "from manual_dir")
  msg = str(err.value)
  assert f"Raw file 'api.json' (from manual_dir: {path}) has sha256 " in msg
  assert f"expects sha256 {raw.sha256} ({len(pinned)} bytes), the upstream file {raw.url}" in msg
  assert f"`curl -L -o {path} {raw.url}`" in msg and "\n" not in msg
  ec.verify(*_raw(tmp_path, pinned, pinned), "from manual_dir")  # the pinned bytes pass


class _OfflineDownloads:
  """A dl_manager whose manual_dir lacks the file and whose downloads fail (no network)."""

  def __init__(self, manual_dir):
    self.manual_dir = manual_dir

  def download(self, url):
    raise ConnectionError(f"cannot reach {url}")


def test_missing_raw_file_offline_names_file_sha256_and_manual_dir(tmp_path):
  _, raw = _raw(tmp_path, b"", b"pinned bytes")
  manual = tmp_path / "manual"
  manual.mkdir()
  with pytest.raises(ec.RawFileError) as err:
    ec.fetch_raw_files(_OfflineDownloads(manual), [raw])
  msg = str(err.value)
  assert f"Raw file 'api.json' is not in manual_dir ({manual}) and downloading it failed" in msg
  assert f"Expected sha256 {raw.sha256}" in msg and "Put the upstream file at " in msg


def test_checksums_without_the_raw_file_are_named(tmp_path):
  (tmp_path / ec.CHECKSUMS_FILENAME).write_text("# url\tsize\tsha256\tname\n")
  with pytest.raises(ec.RawFileError, match=r"checksums.tsv has no entry for 'a.json' at "
                     r"https://example.org/a.json; add its url, size, sha256 and name"):
    ec.raw_files_for(tmp_path, {"a.json": "https://example.org/a.json"})


def test_unparseable_records_are_counted_reported_and_saved(caplog):
  report = ec.ConversionReport()
  for i in range(7):
    report.drop("record is not a JSON object", f"api.jsonl:{i + 1}")
  report.drop("gold tool has no description", "q-3")
  with caplog.at_level(logging.WARNING):
    report.log("mybench")
  assert "mybench: 7 records not converted: record is not a JSON object (e.g. api.jsonl:1, " \
         "api.jsonl:2, api.jsonl:3, api.jsonl:4, api.jsonl:5)" in caplog.text
  assert "mybench: 1 records not converted: gold tool has no description (e.g. q-3)" in caplog.text
  saved = report.as_dict()  # what the builder writes to the dataset's metadata.json
  assert saved["dropped"] == {"gold tool has no description": 1,
                              "record is not a JSON object": 7}
  assert len(saved["dropped_examples"]["record is not a JSON object"]) == 5


# ---------------------------------------------------------------------------- the CLI plumbing

_TOY = """
import sys
sys.path.insert(0, "experiments")
import _cli
from absl import app

def main(argv):
  raise {exc}

_cli.run(main, "toy")
"""


def test_expected_errors_are_one_line_but_real_bugs_keep_their_traceback():
  line = _one_line_error(_cli_run(_TOY.format(exc='app.UsageError("bad usage")')), "toy")
  assert line == "toy: error: bad usage"
  bug = _cli_run(_TOY.format(exc='RuntimeError("a real bug")'))
  assert bug.returncode == 1
  assert "Traceback (most recent call last)" in bug.stderr
  assert "RuntimeError: a real bug" in bug.stderr


@pytest.mark.parametrize("dotted", _cli.USER_ERRORS)
def test_every_user_error_type_exists(dotted):
  import importlib  # pylint: disable=import-outside-toplevel
  module, name = dotted.rsplit(".", 1)
  cls = getattr(importlib.import_module(module), name)
  assert issubclass(cls, Exception) and _cli.is_user_error(cls("x"))
  assert not _cli.is_user_error(ValueError("x")) and not _cli.is_user_error(KeyError("x"))
