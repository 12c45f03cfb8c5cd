# Two commands set up everything on a fresh machine:
#   make demo   installs, then runs detect on the bundled examples
#   make test   installs, then runs the test suite
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/k8s-auto-fix
CORPUS ?= ../shared/corpus
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: setup demo test bench-detect bench-parity bench-fix bench-scheduler parity-reference clean

setup:
	bash scripts/setup.sh

demo: setup
	$(CLI) detect examples --format table || test $$? -eq 1
	$(CLI) fix examples --unsafe-fixes || test $$? -eq 1
	$(CLI) run examples --out out/demo

test: setup
	$(PY) -m pytest

bench-detect: setup
	$(CLI) bench detect $(CORPUS)

bench-fix: setup
	$(CLI) bench fix $(CORPUS)

bench-scheduler: setup
	$(CLI) bench scheduler $(CORPUS) --out out/bench

bench-parity: setup
	$(CLI) bench parity $(CORPUS)

parity-reference: setup
	$(CLI) bench parity $(CORPUS) --context file --reference $(CORPUS)/reference/kube-linter-findings.jsonl

clean:
	rm -rf $(VENV) .tools build *.egg-info
