"""Validation of two selector defaults on public data from ``../shared/external_data``.

1. ``query_from`` (chat requests): API-Bank level-1, 399 dialogues (``level-1-api.json``) as
   OpenAI ``messages``: the instruction before its API list is the system turn, then the
   ``User:``/``AI:`` turns; each request brings its own API list (2-5 APIs, the per-query
   ``tools``; requests listing a single API are left out), and the 49-API pool is a harder second setting. Top-1 of the zero-shot selector
   for ``last_user``, ``user_turns`` and ``all``, with and without the 82 ``GetUserToken`` golds
   (a login step decided by the dialogue, not the intent).
2. ``window_pool`` (long documents): tool documents longer than the encoder's 256 tokens, embedded
   as the first window only (what truncation gave), as the mean of their windows' embeddings, or
   as their element-wise max. Two sets: APIBench Hugging Face (the 827 of 911 instructions
   whose gold call is in the API pool; 936 APIs whose document is the whole API record, 799
   longer than 256 tokens), ranked among all 936 and in 5-way episodes; MetaTool (every 10th of
   its queries whose tool has a manifest: 1,006; 153 tools whose document is
   ``description_for_model`` from ``plugin_info.json``, 21 longer than 256 tokens), ranked
   among all 153.

Results (2026-12-04, zero-shot): query_from on 294 API-Bank requests with 2-5 APIs of their own:
last_user 0.745, user_turns 0.469, all 0.459 top-1 (among all 49 APIs: 0.333 / 0.350 / 0.323).
Window pooling, mean / max / truncated: APIBench 5-way 0.770 / 0.751 / 0.740, among 936
0.104 / 0.100 / 0.100; MetaTool among 153 0.650 / 0.636 / 0.659 (long gold: 0.527 / 0.418 /
0.575). About 4 min (chat) and 15 min (windows) on the shared 2-core CPU.

    .venv/bin/python experiments/benchmarks/selector_validation.py [--json_out F]
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import pathlib
import re
import time

import numpy as np

from mta_jax import windowing
from mta_jax.models import TextEncoder, encoder as encoder_lib, tokenizer as tok_lib
from mta_jax.selector import ToolSelector

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXTERNAL = ROOT.parent / "shared" / "external_data"  # the checkout's ../shared


# ---------------------------------------------------------------------------- chat (API-Bank)

def api_bank_chat(path: pathlib.Path):
  """(messages, per-request tools, gold name) per level-1 dialogue, and the pool of all APIs."""
  out, pool = [], {}
  for rec in json.loads(path.read_text()):
    head, _, apis = rec["instruction"].partition("API descriptions:")
    tools = []
    for line in apis.strip().splitlines():
      api = json.loads(line)
      tools.append({"name": api["name"], "description": api["description"],
                    "parameters": {"type": "object", "properties": {
                        k: {"type": v.get("type", ""), "description": v.get("description", "")}
                        for k, v in api.get("input_parameters", {}).items()}}})
      pool.setdefault(api["name"], tools[-1])
    messages = [{"role": "system", "content": head.strip()}]
    for line in rec["input"].splitlines():
      m = re.match(r"^(User|AI): ?(.*)$", line)
      if m:
        messages.append({"role": "user" if m.group(1) == "User" else "assistant",
                         "content": m.group(2)})
      elif line.strip() and not line.startswith("Generate API Request") and len(messages) > 1:
        messages[-1]["content"] += "\n" + line
    gold = re.match(r"API-Request: \[(\w+)\(", rec["expected_output"]).group(1)
    out.append((messages, tools, gold))
  # Requests whose list has one API have nothing to choose (a list needs two tools).
  out = [r for r in out if len(r[1]) >= 2]
  return out, list(pool.values())


def validate_query_from(encoder: TextEncoder) -> dict:
  data, pool = api_bank_chat(EXTERNAL / "api_bank" / "level-1-api.json")
  sel = ToolSelector.pretrained(encoder=encoder).set_tools(pool, warmup=False)
  rows = {}
  for how in ("last_user", "user_turns", "all"):
    reqs = [{"messages": m} for m, _, _ in data]
    own = sel.rank(reqs, tools=[t for _, t, _ in data], query_from=how, top_k=1)
    full = sel.rank(reqs, query_from=how, top_k=1)
    gold = [g for _, _, g in data]
    keep = [g != "GetUserToken" for g in gold]
    acc = lambda r, mask: float(np.mean([x[0].name == g for x, g, k in zip(r, gold, mask) if k]))
    rows[how] = {"own_list": acc(own, [True] * len(gold)), "own_list_no_token": acc(own, keep),
                 "pool_49": acc(full, [True] * len(gold)), "pool_49_no_token": acc(full, keep)}
    print(f"query_from={how:10s} own list top-1 {rows[how]['own_list']:.3f} "
          f"(w/o GetUserToken {rows[how]['own_list_no_token']:.3f})  49-API pool "
          f"{rows[how]['pool_49']:.3f} ({rows[how]['pool_49_no_token']:.3f})", flush=True)
  return {"n": len(data), "n_pool": len(pool), "rows": rows}


# ---------------------------------------------------------------------------- long documents

def window_embeddings(encoder: TextEncoder, texts: list[str], overlap: int = 64):
  """Per text: (W, H) unit embeddings of its 256-token windows (W = 1 for a short text)."""
  tok = encoder.tokenizer
  rows, owner = [], []
  for i, ids in enumerate(tok.encode_full(texts)):
    ws = tok_lib.windows(ids, tok_lib.MAX_LENGTH, overlap)
    rows += ws
    owner += [i] * len(ws)
  order = np.argsort([len(r) for r in rows], kind="stable")
  emb = np.zeros((len(rows), encoder.cfg.hidden_size), np.float32)
  for start in range(0, len(order), 32):
    idx = order[start:start + 32]
    chunk = [rows[j] for j in idx] + [[]] * (32 - len(idx))
    b = tok.pad(chunk, tok_lib.bucket_for(max(len(rows[j]) for j in idx)))
    out = encoder_lib._embed_fn(encoder.graphdef, encoder.params, b.ids, b.mask)  # pylint: disable=protected-access
    emb[idx] = np.asarray(out)[:len(idx)]
  owner = np.asarray(owner)
  return [emb[owner == i] for i in range(len(texts))]


def pooled_docs(wins) -> dict[str, np.ndarray]:
  return {"truncate": np.stack([w[0] for w in wins]),
          "mean": np.stack([windowing.pool(w, "mean") for w in wins]),
          "max": np.stack([windowing.pool(w, "max") for w in wins])}


def top1(q: np.ndarray, docs: np.ndarray, gold: list[set[int]]) -> float:
  best = np.argmax(q @ docs.T, axis=1)
  return float(np.mean([b in g for b, g in zip(best, gold)]))


def episodes_top1(q, docs, gold, rng, n_way=5, reps=5) -> float:
  """Gold + (n_way - 1) random other tools per query, ``reps`` draws each."""
  hits = []
  s = q @ docs.T
  for i, g in enumerate(gold):
    g0 = min(g)
    others = np.array([j for j in range(docs.shape[0]) if j not in g])
    for _ in range(reps):
      cand = np.concatenate([[g0], rng.choice(others, n_way - 1, replace=False)])
      hits.append(cand[np.argmax(s[i, cand])] == g0)
  return float(np.mean(hits))


def validate_window_pool(encoder: TextEncoder) -> dict:
  out = {}
  # APIBench Hugging Face: the whole API record is the document.
  apis = [json.loads(l) for l in (EXTERNAL / "gorilla_apibench" / "huggingface_api.jsonl"
                                  ).read_text().splitlines() if l.strip()]
  docs = [f"{a['api_name']}: {json.dumps(a, ensure_ascii=False)}" for a in apis]
  by_call: dict[str, set[int]] = {}
  for i, a in enumerate(apis):
    by_call.setdefault(a["api_call"].strip(), set()).add(i)
  queries, gold = [], []
  for l in (EXTERNAL / "gorilla_apibench" / "huggingface_eval.json").read_text().splitlines():
    if not l.strip():
      continue
    e = json.loads(l)
    m = re.search(r"###Instruction:(.*?)###Output", e["code"], re.S)
    g = by_call.get(e["api_call"].strip())
    if m and g:
      queries.append(m.group(1).strip())
      gold.append(g)
  t0 = time.perf_counter()
  wins = window_embeddings(encoder, docs)
  lens = [len(r) for r in encoder.tokenizer.encode_full(docs)]
  q = encoder.embed(queries)
  rng = np.random.default_rng(0)
  res = {}
  for how, d in pooled_docs(wins).items():
    long_q = [i for i, g in enumerate(gold) if any(lens[j] > 256 for j in g)]
    res[how] = {"all_936": top1(q, d, gold),
                "all_936_long_gold": top1(q[long_q], d, [gold[i] for i in long_q]),
                "5way": episodes_top1(q, d, gold, np.random.default_rng(0))}
  del rng
  out["apibench_hf"] = {"n_queries": len(queries), "n_tools": len(docs),
                        "n_long_docs": int(sum(l > 256 for l in lens)),
                        "max_tokens": int(max(lens)), "secs": time.perf_counter() - t0,
                        "top1": res}
  print(f"APIBench HF: {len(queries)} queries, {len(docs)} APIs, "
        f"{out['apibench_hf']['n_long_docs']} documents > 256 tokens (max {max(lens)})")
  for how, r in res.items():
    print(f"  {how:9s} top-1 among 936 {r['all_936']:.3f} (gold long: {r['all_936_long_gold']:.3f})"
          f"  5-way {r['5way']:.3f}", flush=True)

  # MetaTool: plugin manifests (description_for_model) as documents.
  info = {i["name_for_model"]: i for i in json.loads(
      (EXTERNAL / "metatool" / "plugin_info.json").read_text())}
  rows = list(csv.DictReader(open(EXTERNAL / "metatool" / "all_clean_data.csv",
                                  encoding="utf-8")))
  tools = sorted({r["Tool"] for r in rows if r["Tool"] in info})
  index = {t: i for i, t in enumerate(tools)}
  docs = [f"{t}: {info[t]['description_for_model']}" for t in tools]
  rows = [r for r in rows if r["Tool"] in index][::10]
  lens = [len(r) for r in encoder.tokenizer.encode_full(docs)]
  wins = window_embeddings(encoder, docs)
  q = encoder.embed([r["Query"] for r in rows])
  gold = [{index[r["Tool"]]} for r in rows]
  long_q = [i for i, g in enumerate(gold) if lens[min(g)] > 256]
  res = {how: {"all": top1(q, d, gold),
               "long_gold": top1(q[long_q], d, [gold[i] for i in long_q])}
         for how, d in pooled_docs(wins).items()}
  out["metatool"] = {"n_queries": len(rows), "n_tools": len(tools),
                     "n_long_docs": int(sum(l > 256 for l in lens)),
                     "n_queries_long_gold": len(long_q), "top1": res}
  print(f"MetaTool: {len(rows)} queries, {len(tools)} tools, "
        f"{out['metatool']['n_long_docs']} documents > 256 tokens; {len(long_q)} queries with a "
        "long gold")
  for how, r in res.items():
    print(f"  {how:9s} top-1 among {len(tools)} {r['all']:.3f} (gold long: {r['long_gold']:.3f})",
          flush=True)
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--json_out", default="")
  ap.add_argument("--only", default="", help="chat or windows")
  a = ap.parse_args(argv)
  encoder = TextEncoder.pretrained()
  result = {}
  if a.only in ("", "chat"):
    result["query_from"] = validate_query_from(encoder)
  if a.only in ("", "windows"):
    result["window_pool"] = validate_window_pool(encoder)
  if a.json_out:
    pathlib.Path(a.json_out).write_text(json.dumps(result, indent=1))
  return result


if __name__ == "__main__":
  main()
