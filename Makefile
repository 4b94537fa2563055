# Two commands for a fresh machine (see README.md):
#   make demo   runs the main job on a built-in default (no downloads)
#   make test   runs the whole test suite
# Both create .venv on first use and install what they need into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned to the releases on this machine's local disk;
# an unpinned torch would download gigabytes.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
EXTRAS ?= cpu,ros,dev

.PHONY: demo test install clean

$(VENV)/.installed: setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/seqvpr demo

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) *.egg-info
