# bnn_opt: two commands set everything up (`make install`), `make quick` runs the
# main job, `make test` runs the whole test suite (what .ci/run calls).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned for reproducibility; override e.g. TORCH_SPEC="torch torchvision"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# machines without an NVIDIA GPU: `make install TORCH=cpu` takes torch's CPU build from PyTorch's own wheel index
# (a few hundred MB instead of the CUDA build's ~6 GB); the default takes PyPI's build (with CUDA on Linux x86-64)
TORCH ?= default
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install test export-check nbtest pytest quick bench readme docs

$(VENV)/.installed: settings.ini setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC) $(if $(filter cpu,$(TORCH)),--index-url $(TORCH_CPU_INDEX))
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# then `source .venv/bin/activate` puts bnn-opt, nbdev_test and pytest on PATH (the targets below call .venv/bin/ directly)
install: $(VENV)/.installed
	@echo "installed in $(VENV): run 'source $(VENV)/bin/activate' to use bnn-opt"

# bnn_opt/ must be exactly what nbdev_export makes of nbs/, and the notebooks must be stored clean
export-check: install
	@tmp=$$(mktemp -d) && cp -r settings.ini nbs bnn_opt reproduce $$tmp/ && \
	(cd $$tmp && $(CURDIR)/$(VENV)/bin/nbdev_export && $(CURDIR)/$(VENV)/bin/nbdev_clean && \
	 for f in reproduce/*.ipynb; do $(CURDIR)/$(VENV)/bin/nbdev_clean --fname $$f || exit 1; done) && \
	if diff -rq -x __pycache__ bnn_opt $$tmp/bnn_opt && diff -rq nbs $$tmp/nbs && diff -rq reproduce $$tmp/reproduce; then \
	  rm -rf $$tmp; echo "export-check: bnn_opt/ is in sync with nbs/, notebooks are clean"; \
	else rm -rf $$tmp; echo "export-check: run nbdev_export and nbdev_clean (also on each reproduce/*.ipynb; executed results stay as written), then commit"; exit 1; fi

nbtest: install
	$(VENV)/bin/nbdev_test --n_workers 2 --timing

# tests/test_slurm.py runs the reproduction on a one-node Slurm cluster that tools/slurm_cluster.sh starts and stops;
# as root, the script first installs munge and Slurm from the Debian packages when missing (SLURM=0: no install;
# without Slurm that test is skipped, saying why)
SLURM ?= 1
pytest: install
	$(if $(filter 1,$(SLURM)),-bash tools/slurm_cluster.sh install)
	$(PY) -m pytest -q tests

test: export-check nbtest pytest

# DATA=path/to/cifar10 (train/ and test/ class folders) uses real CIFAR-10; without it, the embedded digits
quick: install
	$(VENV)/bin/bnn-opt reproduce all --scale quick $(if $(DATA),--data $(DATA)) --out results/quick

bench: install
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/train_throughput.py

# README.md is made from nbs/index.ipynb: edit the notebook, then `make readme` (tests/test_docs.py checks they agree)
readme: install
	$(PY) tools/build_docs.py readme

# nbdev's site in _docs/, offline: nbdev's notebook processors make each notebook's page (show_doc signatures; they
# run imports, exported and show_doc cells, no test), then nbdev_docs renders them when the quarto binary is on PATH,
# else nbconvert, with math by the MathJax of jupyter-server-mathjax (dev requirements); it says which it used
docs: install
	$(PY) tools/build_docs.py html --out _docs
