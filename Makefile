# Two commands for a fresh machine (see README.md):
#   make demo   runs the main job on a built-in default (no downloads)
#   make test   runs the whole test suite
# Both create .venv on first use and install what they need into it; `make test` also
# installs the Debian packages the tests use when run as root (tools/install_system_packages.sh).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned to the releases on this machine's local disk;
# an unpinned torch would download gigabytes.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
DEMO_EXTRAS := cpu
TEST_EXTRAS := cpu,ros,ros2,audio,dev
PYTEST_ARGS ?= -q

.PHONY: demo test install system-packages clean

# One stamp per set of extras, so that `make test` after `make demo` adds what it lacks.
$(VENV)/.installed-%: setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[$*]"
	touch $@

install: $(VENV)/.installed-$(TEST_EXTRAS)

system-packages:
	bash tools/install_system_packages.sh

demo: $(VENV)/.installed-$(DEMO_EXTRAS)
	$(VENV)/bin/seqvpr demo

test: system-packages $(VENV)/.installed-$(TEST_EXTRAS)
	$(PY) -m pytest $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) *.egg-info
