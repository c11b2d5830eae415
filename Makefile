# Two entry points: `make demo` (set up, run the pipeline on samples/) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; on a CUDA server use e.g. `make setup TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: setup demo test test-fast browser clean samples

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	@# numba compiles librosa's and genaudio's kernels into their caches once, here (~1 min):
	@# otherwise the first command, the test suite and every Ray worker started before the
	@# cache exists compile them again
	$(PY) -c "import numpy as np; from genaudio.features import compute; \
	  compute(np.random.default_rng(0).standard_normal(66150).astype(np.float32), 22050)"
	touch $@

# Headless Chromium renders the HTML reports in tests (Debian package; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: setup
	$(VENV)/bin/genaudio pipeline samples/ --out $(DEMO_OUT) --config configs/demo.yaml

test: setup browser
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

samples: setup
	$(PY) scripts/make_samples.py --out samples

clean:
	rm -rf $(VENV) runs .pytest_cache
