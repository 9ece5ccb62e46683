# CochleaAI: every target sets itself up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test demo bench clean

setup: $(STAMP)

# Pinned dependencies (torch: the CPU build; slicer-core pins its own vtk), then the
# common library itself in editable mode.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest Testing -q

demo: $(STAMP)
	$(PY) -m cochleaai demo --out demo-output

# Every benchmark in cochleaai/bench/ (quick variants where a full run takes hours); the
# real-CT benchmarks and the MNIST likelihood benchmark need data sets the project does not ship.
MNIST ?= ../shared/data/mnist/mnist.npz
REAL_CT ?= ../shared/data/real-ct
bench: $(STAMP)
	for b in sdf phantom segment batch simulate mar landmarks vae-cochlea; do \
	  $(PY) -m cochleaai bench $$b --json bench-output/$$b.json --out-dir bench-output || exit 1; done
	if [ -d $(REAL_CT) ]; then $(PY) -m cochleaai bench landmarks-real --data $(REAL_CT) --reference T02 \
	  --json bench-output/landmarks-real.json; fi
	if [ -d $(REAL_CT) ]; then $(PY) -m cochleaai bench segment-real --data $(REAL_CT) \
	  --json bench-output/segment-real.json; fi
	if [ -d $(REAL_CT) ]; then $(PY) -m cochleaai bench pair-realism --data $(REAL_CT) \
	  --json bench-output/pair-realism.json; fi
	if [ -f $(MNIST) ]; then $(PY) -m cochleaai bench vae-mnist --quick --data $(MNIST) \
	  --json bench-output/vae-mnist.json --out-dir bench-output; fi

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache
