# The two commands of the README: `make run` and `make test`. Both set up the
# virtualenv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-consul install bench clean

$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV) (first run only)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pixring up

test: $(STAMP)
	$(PY) -m pytest

# The Consul tests again, against a real agent (the double cannot drift unnoticed):
#   CONSUL_HTTP_ADDR=127.0.0.1:8500 make test-consul
test-consul: $(STAMP)
	@test -n "$$CONSUL_HTTP_ADDR" || { echo "set CONSUL_HTTP_ADDR to a real Consul agent"; exit 2; }
	$(PY) -m pytest tests/integration/test_consul_source.py tests/integration/test_consul_register.py tests/integration/test_consul_double.py

# The throughput benchmark against nginx and HAProxy (installs them when missing).
bench: $(STAMP)
	$(PY) -m loadtest.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
