# stag_seg: every target creates .venv when absent and installs the project into it (editable).
# A second run finds the stamp up to date and starts its work within seconds.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stag_seg-installed
DEMO_DATA := data/synthetic_acdc
DEMO_OUT := work_dirs/demo
DIGITS := data/digits
DIGITS_C := data/digits_c
SEEDS ?= 0 1 2

.PHONY: install test demo demo-data demo-cls demo-cls-data docs-figures soak benchmark benchmark-scaling \
	mmcv-full clean-demo

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml requirements/constraints.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade 'pip>=24'
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q tests

demo-data: install
	@test -f $(DEMO_DATA)/meta.json || \
		$(PY) tools/make_synthetic_acdc.py --out $(DEMO_DATA) --num-target 100

# Source, Tent and Tent+STAG (default and logit readings) on the embedded synthetic
# Cityscapes->ACDC stream (4 conditions x 100 images x 3 rounds, batch size 1), side by side,
# with the first 2 predictions of every (round, domain) drawn under <run>/show/.
DEMO_RUNS := source tent tent_stag tent_stag_logit
demo: demo-data
	@for run in $(DEMO_RUNS); do \
		$(PY) tools/test_tta.py configs/demo/segformer-mit-b0_$$run.py \
			--work-dir $(DEMO_OUT)/$$run --show-dir show --show-num 2 \
			--cfg-options log_level=WARNING || exit 1; \
	done
	$(PY) tools/compare_results.py $(foreach run,$(DEMO_RUNS),$(DEMO_OUT)/$(run)/tta_results.json) \
		--out $(DEMO_OUT)

# The classification demo's data: scikit-learn's handwritten digits at 32x32 (997 clean training
# and 800 test images), and Digits-C, the test images under the 15 ImageNet-C corruptions at
# ImageNet strength (the CIFAR table barely changes these digits; see the README). Digits-C keeps
# the table and frost its tables were measured with: the monotone table and the procedural frost.
demo-cls-data: install
	@test -f $(DIGITS)/meta.json || $(PY) tools/make_digits.py --out $(DIGITS)
	@test -f $(DIGITS_C)/labels.npy || \
		$(PY) tools/make_corrupted.py --npy $(DIGITS)/test/images.npy \
			--labels $(DIGITS)/test/labels.npy --out $(DIGITS_C) --preset imagenet \
			--table monotone --frost procedural --workers 2

# Source, Tent, EATA, SAR and DeYO, each +- STAG, on Digits-C in four settings (continual,
# label shift, batch size 1, mixed corruptions), over SEEDS; prints the table of errors.
# CLS_ARGS=--with-logit adds Tent + STAG in the logit reading (the README's table has it).
CLS_ARGS ?=
demo-cls: demo-cls-data
	$(PY) tools/run_cls_benchmark.py --seeds $(SEEDS) --out work_dirs/demo_cls $(CLS_ARGS)

# The figure, table and pictures the README shows, regenerated from a fresh demo run.
docs-figures: demo
	cp $(DEMO_OUT)/comparison.png docs/demo_comparison.png
	cp $(DEMO_OUT)/comparison.md docs/demo_comparison.md
	@for run in source tent tent_stag_logit; do \
		first=$$(ls $(DEMO_OUT)/$$run/show/snow/*_r03.png | head -1); \
		cp $$first docs/demo_show_snow_r3_$$run.png && echo "$$first -> docs/demo_show_snow_r3_$$run.png"; \
	done

# 20 rounds of Tent+STAG and CoTTA+STAG: memory, NaN and skipped steps per round (~20 min)
soak: demo-data
	$(PY) tools/soak.py --rounds 20 --per-domain 20 --out work_dirs/soak

benchmark: install
	$(PY) tools/benchmark_overhead.py --out work_dirs/benchmark_overhead.json

benchmark-scaling: demo-data
	$(PY) tools/benchmark_scaling.py --nprocs 1 2 --out work_dirs/benchmark_scaling.json

# Optional: compiled mmcv 2.1.0 (CPU ops without CUDA; about 8 minutes on 2 cores) in place
# of mmcv-lite, for models that need mmcv's compiled ops. stag_seg then uses the real ops.
# Building it needs setuptools<70 and no build isolation; the pin is restored afterwards.
mmcv-full: install
	$(PY) -m pip install --quiet 'setuptools<70' wheel
	$(PY) -m pip uninstall --yes mmcv-lite
	MMCV_WITH_OPS=1 $(PY) -m pip install --no-build-isolation --no-deps 'mmcv==2.1.0'
	$(PY) -m pip install --quiet 'setuptools>=77.0.3,<81'
	$(PY) -c "import mmcv.ops; print('compiled mmcv ops:', mmcv.ops.__file__)"

clean-demo:
	rm -rf $(DEMO_OUT)
