# CochleaAI: every target sets itself up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup browser test test-slicer-versions demo bench clean

setup: $(STAMP)

# Pinned dependencies (torch: the CPU build; slicer-core pins its own vtk), then the
# common library itself in editable mode.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-cache-dir -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Two worker processes (pytest-xdist): the machines have two cores, and most tests are
# single-threaded.
PYTEST_WORKERS ?= 2

test: $(STAMP) browser test-slicer-versions
	$(PY) -m pytest Testing -q -n $(PYTEST_WORKERS)

# Headless Chromium (Debian's package) prints the plan to PDF, and the tests open the plan's page
# in it. It is a system program: installed here only where apt-get runs as root; elsewhere the
# browser tests skip and say so, and `plan --pdf` says how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    echo "installing Chromium (apt-get install chromium)" && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "no Chromium: the tests that open pages in a browser will skip"

# The tests that need no torch, on the numpy and scipy that Slicer 5.8 and 5.10 ship (the
# extension installs the other packages into Slicer's Python with pip, as here). Test files
# that need torch are skipped there, saying so (Testing/conftest.py). The optional peers
# extra (itk-elastix, 1.6 GB of ITK) stays out of these two: its tests skip without it and
# run in .venv, and the three environments then fit a small disk.
OLD_SLICERS := 5.8 5.10
NUMPY_5.8   := 1.26.4
SCIPY_5.8   := 1.13.1
NUMPY_5.10  := 2.0.2
SCIPY_5.10  := 1.13.1

.venv-slicer%/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv .venv-slicer$*
	.venv-slicer$*/bin/python -m pip install --quiet --upgrade pip
	grep -v -E '^(torch|numpy|scipy|itk-elastix)==' requirements.txt > .venv-slicer$*/requirements.txt
	.venv-slicer$*/bin/python -m pip install --quiet --no-cache-dir -r .venv-slicer$*/requirements.txt \
	  numpy==$(NUMPY_$*) scipy==$(SCIPY_$*)
	.venv-slicer$*/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test-slicer-versions: $(foreach v,$(OLD_SLICERS),.venv-slicer$(v)/.installed)
	for v in $(OLD_SLICERS); do \
	  echo "numpy and scipy of Slicer $$v:"; \
	  .venv-slicer$$v/bin/python -m pytest Testing -q -p no:cacheprovider -n $(PYTEST_WORKERS) || exit 1; done

demo: $(STAMP)
	$(PY) -m cochleaai demo --out demo-output

# Every benchmark in cochleaai/bench/ (quick variants where a full run takes hours); the
# real-CT benchmarks and the MNIST likelihood benchmark need data sets the project does not ship.
MNIST ?= ../shared/data/mnist/mnist.npz
REAL_CT ?= ../shared/data/real-ct
bench: $(STAMP)
	for b in sdf phantom segment batch simulate mar landmarks vae-cochlea plan; do \
	  $(PY) -m cochleaai bench $$b --json bench-output/$$b.json --out-dir bench-output || exit 1; done
	if [ -d $(REAL_CT) ]; then $(PY) -m cochleaai bench landmarks-real --data $(REAL_CT) --reference T02 \
	  --json bench-output/landmarks-real.json; fi
	if [ -d $(REAL_CT) ]; then $(PY) -m cochleaai bench segment-real --data $(REAL_CT) \
	  --json bench-output/segment-real.json; fi
	if [ -d $(REAL_CT) ]; then $(PY) -m cochleaai bench segment-versions --quick --data $(REAL_CT) \
	  --json bench-output/segment-versions.json; fi
	if [ -d $(REAL_CT) ]; then $(PY) -m cochleaai bench pair-realism --data $(REAL_CT) \
	  --json bench-output/pair-realism.json; fi
	if [ -f $(MNIST) ]; then $(PY) -m cochleaai bench vae-mnist --quick --data $(MNIST) \
	  --json bench-output/vae-mnist.json --out-dir bench-output; fi

clean:
	rm -rf $(VENV) .venv-slicer* demo-output bench-output .pytest_cache
