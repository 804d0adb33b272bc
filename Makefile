# stag_seg: every target creates .venv when absent and installs the project into it (editable).
# A second run finds the stamp up to date and starts its work within seconds.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stag_seg-installed
DEMO_DATA := data/synthetic_acdc
# the same scenes under conditions calibrated to ACDC (configs/suites/demo-calibrated.py)
CALIBRATED_DATA := data/synthetic_acdc_calibrated
CALIBRATED_SEVERITY := fog=0.2 night=1.0 rain=0.8 snow=0.6
DEMO_OUT := work_dirs/demo
DIGITS := data/digits
DIGITS_C := data/digits_c
# make demo-cls over one seed by default (36 runs); SEEDS='0 1 2' makes the README's tables
SEEDS ?= 0
# make demo-cls runs this many runs at once, each a process with cores/JOBS torch threads
JOBS ?= 2

.PHONY: install test test-fast test-zoo test-faults zoo docs lint demo demo-data demo-data-calibrated calibrate demo-cls demo-cls-data demo-table results-demo soak faults benchmark \
	benchmark-scaling mmcv-full clean-demo wheel check-wheel resolver-check test-onedl

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml requirements/constraints.txt requirements/stack.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade 'pip>=24'
	$(PY) -m pip install --quiet -c requirements/constraints.txt -r requirements/stack.txt -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

# The tests not marked slow (under 2 minutes on 2 cores); `make test` runs them all
test-fast: install
	$(PY) -m pytest -q -m "not slow and not zoo"

# The documentation site (docs/en): Sphinx with myst-parser, warnings as errors. Its requirements
# (requirements/docs.txt, Python >= 3.11) go into the project's virtualenv beside the pinned
# stack, which the constraints keep as it is; the HTML lands in docs/en/_build/html.
DOCS_STAMP := $(VENV)/.stag_seg-docs-installed

$(DOCS_STAMP): requirements/docs.txt requirements/constraints.txt | $(STAMP)
	$(PY) -m pip install --quiet -c requirements/constraints.txt -r requirements/docs.txt
	touch $(DOCS_STAMP)

docs: install $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs/en docs/en/_build/html

# Every algorithm folder of the installed MMSeg and mmpretrain zoos under STAGHook: adapted,
# refused with a reason, or not buildable here; no crash (about 15 minutes; CI runs it)
test-zoo: install
	$(PY) -m pytest -q -m zoo tests/test_model_zoo.py

# The fault scenarios of long two-process runs: a killed rank, preemption, torn states, a full
# disk, a NaN storm, 20 rounds of load (about 3.5 minutes; CI runs it)
test-faults: install
	$(PY) -m pytest -q -m faults tests/test_faults.py

# Regenerate results/model_zoo/supported_models.json and docs/en/supported_models.md
zoo: install
	$(PY) tools/sweep_zoo.py --out results/model_zoo/supported_models.json \
		--table docs/en/supported_models.md

# ruff with the rules of pyproject.toml ([tool.ruff]); the dev extra installs it
lint: install
	$(PY) -m ruff check .

demo-data: install
	@test -f $(DEMO_DATA)/meta.json || \
		$(PY) tools/make_synthetic_acdc.py --out $(DEMO_DATA) --num-target 100

# The target stream only (no source split), each condition at the severity that
# tools/calibrate_severity.py chose (make calibrate); the suite configs/suites/demo-calibrated.py
demo-data-calibrated: install
	@test -f $(CALIBRATED_DATA)/meta.json || \
		$(PY) tools/make_synthetic_acdc.py --out $(CALIBRATED_DATA) --num-target 100 \
			--num-source-train 0 --num-source-val 0 --severity $(CALIBRATED_SEVERITY)

# The source model's share of its clean mIoU per condition and severity, on the conditions'
# val scenes, and the severity nearest ACDC's share per condition (about 5 minutes)
calibrate: install
	$(PY) tools/calibrate_severity.py configs/demo/segformer-mit-b0_source.py \
		--out work_dirs/calibrate

# Source, Tent and Tent+STAG (its default) on the embedded synthetic Cityscapes->ACDC stream
# (4 conditions x 100 images x 3 rounds, batch size 1), side by side, with the first 2
# predictions of every (round, domain) drawn under <run>/show/.
# DEMO_RUNS='source tent tent_stag tent_stag_logit' adds the logit reading (lambda 4).
DEMO_RUNS ?= source tent tent_stag
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
# label shift, batch size 1, mixed corruptions), over SEEDS (default 0; the README's tables:
# SEEDS='0 1 2'); prints the table of errors
# (the suite configs/suites/digits-c.py). CLS_ARGS='--with logit' adds Tent + STAG in the
# logit reading (the README's table has it); CLS_ARGS='--with continual' adds RDumb, RoTTA, RMT
# and ROID; CLS_ARGS='--family bn' another source model.
CLS_ARGS ?=
demo-cls: demo-cls-data
	$(PY) tools/run_suite.py configs/suites/digits-c.py --seeds $(SEEDS) --jobs $(JOBS) \
		--out work_dirs/demo_cls $(CLS_ARGS)

# Every method +- STAG on the embedded segmentation benchmark, 3 rounds: the table of the
# README's method zoo (the suite configs/suites/demo.py). TABLE_ARGS=--reuse resumes an
# interrupted table; TABLE_ARGS='--from-table results/suites/demo/table.json' takes the
# committed table's runs and runs only the rows it lacks.
TABLE_ARGS ?=
demo-table: demo-data
	$(PY) tools/run_suite.py configs/suites/demo.py --out work_dirs/benchmark_table \
		$(TABLE_ARGS)

# results/demo/: the demo's comparison (its runs' records in comparison.json, the table, CSV and
# figure made from them) and the first snow picture of round 3 of each run, from a fresh demo run
# that includes the logit reading.
results-demo: DEMO_RUNS = source tent tent_stag tent_stag_logit
results-demo: demo
	cp $(DEMO_OUT)/comparison.json $(DEMO_OUT)/comparison.md $(DEMO_OUT)/comparison.csv \
		$(DEMO_OUT)/comparison.png results/demo/
	@for run in $(DEMO_RUNS); do \
		first=$$(ls $(DEMO_OUT)/$$run/show/snow/*_r03.png | head -1); \
		cp $$first results/demo/show_snow_r3_$$run.png && echo "$$first -> results/demo/"; \
	done
	$(PY) tools/copy_tables.py README.md

# 20 rounds of Tent+STAG and CoTTA+STAG: memory, NaN and skipped steps per round (~20 min)
soak: demo-data
	$(PY) tools/soak.py --rounds 20 --per-domain 20 --out work_dirs/soak

# Each fault of a long two-process run injected and watched (tools/fault_check.py): a killed
# rank, SIGTERM and SIGINT, a torn state, a kill while writing one, a full disk, a NaN storm, 20
# rounds of load. By default on the tiny model and stream the tests use (a few minutes);
# FAULTS_ARGS='configs/demo/segformer-mit-b0_tent_stag.py
# checkpoints/segformer-mit-b0_synthetic-cityscapes.pth --cfg-options
# test_dataloader.dataset.indices=8' on the embedded benchmark. Prints the table of
# docs/en/user_guides/long_runs.md and writes faults.json and faults.md to work_dirs/faults.
FAULTS_ARGS ?= --tiny
faults: install
	$(PY) tools/fault_check.py $(FAULTS_ARGS) --out work_dirs/faults

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

# The wheel and the sdist, versioned by stag_seg/version.py.
wheel: install
	rm -rf dist build
	$(PY) -m build --outdir dist .

# The wheel as a user installs it: --no-deps into a fresh virtualenv that holds the pinned stack
# (and the few runtime packages the stack does not bring), `pip check` to prove that the stack
# satisfies the wheel's requirements, then the self-check from outside the source tree (imports,
# registrations, an adapted run of MMSeg's stock SegFormer config with custom_imports and
# STAGHook) from an empty temporary folder. About 4 minutes, most of it installing torch.
WHEEL_VENV ?= $(CURDIR)/.venvs/wheel
WHEEL_RUNTIME := ftfy regex tqdm 'setuptools<81'
check-wheel: wheel
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --upgrade 'pip>=24'
	$(WHEEL_VENV)/bin/python -m pip install --quiet -c requirements/constraints.txt \
		-r requirements/stack.txt $(WHEEL_RUNTIME)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --no-deps dist/stag_seg-*.whl
	$(WHEEL_VENV)/bin/python -m pip check
	cd "$$(mktemp -d)" && $(WHEEL_VENV)/bin/python -m stag_seg.selfcheck
	rm -rf $(WHEEL_VENV)

# pip's resolver, in dry-run mode, on installing the wheel into a typical existing OpenMMLab
# environment (torch 2.1.2, compiled mmcv 2.1.0, mmengine 0.10.3, mmsegmentation 1.2.2,
# mmpretrain 1.2.0): it must change none of them and add no mmcv-lite (tools/check_resolver.py).
resolver-check: wheel
	$(PY) tools/check_resolver.py dist/stag_seg-*.whl

# The OneDL forks of mmengine, mmcv, mmsegmentation and mmpretrain (same import names, other
# distribution names): a virtualenv with them and the pinned torch, the toolkit installed
# --no-deps, and the tests that do not need the digits data or several processes.
ONEDL_VENV ?= $(CURDIR)/.venvs/onedl
ONEDL_STACK := onedl-mmengine==0.10.12 onedl-mmcv==2.3.6 onedl-mmsegmentation==1.4.2 \
	onedl-mmpretrain==1.3.6
ONEDL_TESTS := tests/test_stag_math.py tests/test_methods.py tests/test_segmentor_adaptation.py \
	tests/test_hooks.py tests/test_classification.py tests/test_fidelity.py tests/test_compat.py \
	tests/test_registry.py tests/test_install.py
test-onedl:
	test -x $(ONEDL_VENV)/bin/python || $(PYTHON) -m venv $(ONEDL_VENV)
	$(ONEDL_VENV)/bin/python -m pip install --quiet --upgrade 'pip>=24'
	$(ONEDL_VENV)/bin/python -m pip install --quiet -c requirements/constraints.txt \
		torch==2.14.1 torchvision==0.29.1 pytest
	$(ONEDL_VENV)/bin/python -m pip install --quiet $(ONEDL_STACK) $(WHEEL_RUNTIME)
	$(ONEDL_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(ONEDL_VENV)/bin/python -m pytest -q $(ONEDL_TESTS)
