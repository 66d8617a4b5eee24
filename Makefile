# The two commands of the README: `make run` and `make test`. Both set up the
# virtualenv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The request path, compiled to C with mypyc (balancer/compile.py names the modules) when
# any balancer module or another compiled module changes: the compiled ones also take
# types from those they import.
COMPILED := $(VENV)/.compiled
HOT_PATH_SOURCES := $(wildcard balancer/*.py) pixring/membership.py

.PHONY: run test test-browser test-consul install compile bench tier-bench profile capacity fuzz clean

$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV) (first run only)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,compile]'
	@touch $(STAMP)

# Without a C compiler the request path stays plain Python: slower, same behaviour. A
# module mypyc refuses (a type error) stops the build instead of quietly running slower.
$(COMPILED): $(STAMP) $(HOT_PATH_SOURCES)
	@echo "==> compiling the request path with mypyc"
	@$(PY) -m balancer.compile; status=$$?; \
	if [ $$status -eq 3 ]; then $(PY) -m balancer.compile --clean; \
		echo "!! the request path runs as plain Python"; \
	elif [ $$status -ne 0 ]; then exit $$status; fi
	@touch $(COMPILED)

install: $(STAMP)

compile: $(COMPILED)

run: $(COMPILED)
	$(VENV)/bin/pixring up

test: $(COMPILED)
	$(PY) -m pytest

# The status page in headless Chromium (Debian's package, installed when missing); it saves
# the screenshot docs/operations.md shows.
test-browser: $(COMPILED)
	PIXRING_BROWSER_TESTS=1 $(PY) -m pytest tests/browser

# The Consul tests again, against a real agent (the double cannot drift unnoticed):
#   CONSUL_HTTP_ADDR=127.0.0.1:8500 make test-consul
test-consul: $(STAMP)
	@test -n "$$CONSUL_HTTP_ADDR" || { echo "set CONSUL_HTTP_ADDR to a real Consul agent"; exit 2; }
	$(PY) -m pytest tests/integration/test_consul_source.py tests/integration/test_consul_register.py tests/integration/test_consul_double.py

# The throughput benchmark against nginx and HAProxy (installs them when missing).
bench: $(COMPILED)
	$(PY) -m loadtest.bench $(BENCH_ARGS)

# What the tier costs the render fleet: pixring, nginx and HAProxy in front of the same
# reference renderers, a seeded open-loop workload with a hot-image burst and a renderer
# kill; results in var/tier/<time>/ (installs nginx and HAProxy when missing).
#   make tier-bench TIER_ARGS=--quick
tier-bench: $(COMPILED)
	$(PY) -m loadtest.tier $(TIER_ARGS)

# Where one worker's CPU goes under the benchmark's load (perf; installs it when missing).
profile: $(COMPILED)
	$(PY) -m loadtest.profile $(PROFILE_ARGS)

# A capacity test with locust: a local cluster (or CAPACITY_ARGS='--host URL'), imgix-like
# traffic, a summary; exit 1 when too many requests failed.
#   make capacity CAPACITY_ARGS='--run-time 2m --users 40'
#   make capacity CAPACITY_ARGS='--find-capacity --locust-workers 2'   (steps until the knee)
capacity: $(COMPILED)
	$(PY) -m loadtest.capacity $(CAPACITY_ARGS)

# Coverage-guided fuzzing (atheris, libFuzzer's engine) of the front's request-head parsing
# and of normalization, FUZZ_SECONDS for each; what it learns stays in var/fuzz/, a crash is
# written to var/fuzz/crashes-* and fails the run. atheris comes with the `fuzz` extra.
#   make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
FUZZ_STAMP := $(VENV)/.fuzz-installed

$(FUZZ_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[fuzz]'
	@touch $(FUZZ_STAMP)

fuzz: $(COMPILED) $(FUZZ_STAMP)
	@mkdir -p var/fuzz
	$(PY) -m tests.fuzzing front -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=var/fuzz/crashes-front- var/fuzz/front
	$(PY) -m tests.fuzzing normalize -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=var/fuzz/crashes-normalize- var/fuzz/normalize

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache balancer/*.so pixring/*.so *__mypyc*.so
