# Two commands set up everything on a fresh machine:
#   make demo   installs the package (no Go, no apt), then runs it on the bundled examples
#   make test   installs the package and the test oracles (cached per machine), then runs the tests
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/k8s-auto-fix
CORPUS ?= ../shared/corpus
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: setup setup-package demo test bench-detect bench-parity bench-fix bench-scheduler parity-reference clean

setup-package:
	bash scripts/setup.sh package

setup:
	bash scripts/setup.sh test

demo: setup-package
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
