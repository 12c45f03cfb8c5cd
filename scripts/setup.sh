#!/usr/bin/env bash
# Installs everything k8s-auto-fix needs on a fresh machine:
#   - the package (editable, with test extras) into .venv
#   - pinned external tools into .tools/bin with `go install`
# Re-running is cheap: the virtualenv and tool builds are reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_LINTER_VERSION="${KUBE_LINTER_VERSION:-v0.7.6}"
KUBECTL_VALIDATE_VERSION="${KUBECTL_VALIDATE_VERSION:-v0.0.4}"
PYTHON="${PYTHON:-python3}"
TOOLS_BIN="$PWD/.tools/bin"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

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
