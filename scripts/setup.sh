#!/usr/bin/env bash
# Installs everything k8s-auto-fix needs on a fresh machine:
#   - the package (editable, with test extras) into .venv
#   - pinned external tools into .tools/bin with `go install`
# Re-running is cheap: the virtualenv and tool builds are reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_LINTER_VERSION="${KUBE_LINTER_VERSION:-v0.8.3}"
KUBECTL_VALIDATE_VERSION="${KUBECTL_VALIDATE_VERSION:-v0.0.4}"
PYTHON="${PYTHON:-python3}"
TOOLS_BIN="$PWD/.tools/bin"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'

mkdir -p "$TOOLS_BIN"

# go_install NAME MODULE VERSION: builds MODULE@VERSION into .tools/bin unless
# the same version was built before (recorded in .tools/bin/NAME.version).
go_install() {
  local name="$1" module="$2" version="$3"
  if [ -x "$TOOLS_BIN/$name" ] && [ "$(cat "$TOOLS_BIN/$name.version" 2>/dev/null)" = "$version" ]; then
    echo "setup: $name $version already built"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "setup: WARNING: go not found; $name is not installed (tests that need it are skipped)" >&2
    return 0
  fi
  echo "setup: go install $module@$version"
  if GOBIN="$TOOLS_BIN" go install "$module@$version" 2>"$TOOLS_BIN/$name.log"; then
    echo "$version" >"$TOOLS_BIN/$name.version"
  else
    echo "setup: WARNING: could not install $name $version (see .tools/bin/$name.log):" >&2
    tail -n 2 "$TOOLS_BIN/$name.log" >&2
    echo "setup: the features that need $name report it clearly; the rest works" >&2
  fi
}

go_install kube-linter golang.stackrox.io/kube-linter/cmd/kube-linter "$KUBE_LINTER_VERSION"
go_install kubectl-validate sigs.k8s.io/kubectl-validate "$KUBECTL_VALIDATE_VERSION"

# The SARIF 2.1.0 JSON schema, to validate `detect --format sarif` in the
# tests. Microsoft's SARIF multitool package on the npm registry ships it.
SARIF_PACKAGE="@microsoft/sarif-multitool-linux@5.7.0"
if [ ! -f .tools/sarif/sarif-2.1.0.json ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p .tools/sarif
    (cd .tools/sarif && npm pack --silent "$SARIF_PACKAGE" >/dev/null 2>&1 \
      && tar -xzf microsoft-sarif-multitool-linux-*.tgz package/sarif-2.1.0.json \
      && mv package/sarif-2.1.0.json . && rm -rf package microsoft-sarif-multitool-linux-*.tgz) \
      || echo "setup: WARNING: could not fetch the SARIF schema ($SARIF_PACKAGE); its test is skipped" >&2
  else
    echo "setup: WARNING: npm not found; the SARIF schema test is skipped" >&2
  fi
fi

# Headless Chromium renders report.html in a test (Debian's package; as root only).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing chromium (apt) for the report test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/tmp/k8s-auto-fix-chromium.log 2>&1 \
    || echo "setup: WARNING: could not install chromium (see /tmp/k8s-auto-fix-chromium.log); the report test is skipped" >&2
fi
