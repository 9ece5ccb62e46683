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

bench: $(STAMP)
	$(PY) -m cochleaai bench sdf --json bench-output/sdf.json
	$(PY) -m cochleaai bench phantom --json bench-output/phantom.json

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache
