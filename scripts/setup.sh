#!/usr/bin/env bash
# Sets k8s-auto-fix up on a fresh machine; re-running it is cheap.
#
#   scripts/setup.sh package   the package, editable, into .venv (all `make demo` needs:
#                              no Go build, no apt)
#   scripts/setup.sh test      the package with its test, bench, ray and postgres extras,
#                              and the test oracles and PostgreSQL (all `make test` needs)
#
# The package is installed again only when pyproject.toml changed since the
# last install (a stamp in .venv records its hash). External tools are built
# once per machine into a cache outside the clone and linked into .tools/bin
# (scripts/tools.sh), so CI and a second clone reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TARGET="${1:-test}"
CACHE="${K8S_AUTO_FIX_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-auto-fix/tools}"

# install_package EXTRAS: pip install -e ".[EXTRAS]" unless a stamp says it is
# done (the package with the test extras serves the demo too).
install_package() {
  local extras="$1" stamp=".venv/.installed${1:+-$1}" want
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] || { [ -z "$extras" ] && [ "$(cat .venv/.installed-test,bench,ray,postgres 2>/dev/null)" = "$want" ]; }; then
    return 0
  fi
  echo "setup: installing the package${extras:+ with [$extras]} into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
  echo "$want" >"$stamp"
}

# The SARIF 2.1.0 JSON schema, to validate `detect --format sarif` in the tests.
# Microsoft's SARIF multitool package on the npm registry ships it.
fetch_sarif_schema() {
  local package="@microsoft/sarif-multitool-linux@5.7.0" dir="$CACHE/sarif-schema-5.7.0"
  if [ ! -f "$dir/sarif-2.1.0.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "setup: WARNING: npm not found; the SARIF schema test is skipped" >&2
      return 0
    fi
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$package" >/dev/null 2>&1 \
      && tar -xzf microsoft-sarif-multitool-linux-*.tgz package/sarif-2.1.0.json \
      && mv package/sarif-2.1.0.json . && rm -rf package microsoft-sarif-multitool-linux-*.tgz) \
      || { echo "setup: WARNING: could not fetch the SARIF schema ($package); its test is skipped" >&2; return 0; }
  fi
  mkdir -p .tools && { [ -L .tools/sarif ] || rm -rf .tools/sarif; } && ln -sfn "$dir" .tools/sarif
}

# PostgreSQL (Debian's package) for the shared-queue tests: a fixture runs initdb and
# postgres in a temporary folder; the packaged cluster service is never started.
install_postgresql() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing postgresql (apt) for the shared-queue tests"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql) >/tmp/k8s-auto-fix-postgresql.log 2>&1 \
        || echo "setup: WARNING: could not install postgresql (see /tmp/k8s-auto-fix-postgresql.log); the PostgreSQL queue tests are skipped" >&2
    else
      echo "setup: WARNING: PostgreSQL's initdb not found and apt is not available (as root); the PostgreSQL queue tests are skipped" >&2
    fi
  fi
}

# Headless Chromium renders report.html in one test (Debian's package; as root only).
install_chromium() {
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium (apt) for the report test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/tmp/k8s-auto-fix-chromium.log 2>&1 \
      || echo "setup: WARNING: could not install chromium (see /tmp/k8s-auto-fix-chromium.log); the report test is skipped" >&2
  fi
}

case "$TARGET" in
  package)
    install_package ""
    ;;
  test)
    install_package "test,bench,ray,postgres"
    # A tool that cannot be built is reported; the tests that need it say so.
    bash scripts/tools.sh kube-linter kubectl-validate etcd kube-apiserver checkov helm kubectl-kyverno || true
    fetch_sarif_schema
    install_postgresql
    install_chromium
    ;;
  *)
    echo "usage: scripts/setup.sh package|test" >&2
    exit 2
    ;;
esac
