#!/usr/bin/env bash
# External tools, built once per machine and shared by every clone.
#
#   scripts/tools.sh NAME...      build (or reuse) each tool and link it into .tools/bin
#
# Each tool is cached by name and version outside the clone, in
# ${K8S_AUTO_FIX_TOOLS:-${XDG_CACHE_HOME:-~/.cache}/k8s-auto-fix/tools}/NAME-VERSION/,
# so CI and a second clone build nothing. A tool is first tried with
# `go install` (or its usual installer); when that is refused, it is built from
# ../shared/vendor when that folder exists, and otherwise the script says so.
# A failed tool is reported and skipped: the features that need it say so.
set -uo pipefail
cd "$(dirname "$0")/.."

KUBE_LINTER_VERSION=v0.8.3
KUBECTL_VALIDATE_VERSION=v0.0.4
KUBE_APISERVER_VERSION=v1.34.2
ETCD_VERSION=3.4.23
HELM_VERSION=v3.19.0
KYVERNO_VERSION=v1.19.1
CHECKOV_VERSION=3.3.30

CACHE="${K8S_AUTO_FIX_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-auto-fix/tools}"
VENDOR="${K8S_AUTO_FIX_VENDOR:-$PWD/../shared/vendor}"
LINKS="$PWD/.tools/bin"
mkdir -p "$CACHE" "$LINKS"

say() { echo "tools: $*" >&2; }

# link NAME DIR: put DIR/bin/NAME on .tools/bin.
link() { ln -sfn "$2/bin/$1" "$LINKS/$1"; }

# cached NAME VERSION: true when the tool was built before; sets $DIR either way.
cached() {
  DIR="$CACHE/$1-$2"
  [ -x "$DIR/bin/$1" ] && [ -f "$DIR/.done" ]
}

# build NAME VERSION FUNCTION: run FUNCTION into a fresh $DIR/bin, mark it done
# only on success (a half-built tool is never reused), then link it.
build() {
  local name="$1" version="$2" how="$3"
  if cached "$name" "$version"; then
    link "$name" "$DIR"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1 && [ "$how" != build_checkov ] && [ "$how" != build_etcd ]; then
    say "WARNING: go not found; $name is not installed"
    return 1
  fi
  rm -rf "$DIR" && mkdir -p "$DIR/bin"
  say "building $name $version into $DIR (once per machine)"
  local started=$SECONDS
  if (set -e; "$how" "$DIR/bin") >"$DIR/build.log" 2>&1; then
    touch "$DIR/.done"
    link "$name" "$DIR"
    say "$name $version ready ($((SECONDS - started)) s)"
  else
    say "WARNING: could not build $name $version (see $DIR/build.log):"
    tail -n 3 "$DIR/build.log" >&2
    return 1
  fi
}

# go_install_or BIN MODULE@VERSION FALLBACK: `go install`, else the vendored recipe.
go_install_or() {
  local bin="$1" module="$2" fallback="$3"
  if GOBIN="$bin" go install "$module"; then
    return 0
  fi
  echo "go install $module was refused; trying the vendored source"
  if [ -z "$fallback" ] || [ ! -d "$VENDOR" ]; then
    echo "no vendored source ($VENDOR); see ../shared/vendor/README.md"
    return 1
  fi
  "$fallback" "$bin"
}

build_kube_linter() {
  go_install_or "$1" "golang.stackrox.io/kube-linter/cmd/kube-linter@$KUBE_LINTER_VERSION" vendored_kube_linter
}
vendored_kube_linter() {
  local tmp
  tmp=$(mktemp -d)
  tar -xzf "$VENDOR/kube-linter-${KUBE_LINTER_VERSION#v}.tar.gz" -C "$tmp"
  (cd "$tmp/kube-linter-${KUBE_LINTER_VERSION#v}" && go build \
    -ldflags "-X golang.stackrox.io/kube-linter/internal/version.version=$KUBE_LINTER_VERSION" \
    -o "$1/kube-linter" ./cmd/kube-linter)
  rm -rf "$tmp"
}

build_kubectl_validate() {
  GOBIN="$1" go install "sigs.k8s.io/kubectl-validate@$KUBECTL_VALIDATE_VERSION"
}

build_helm() {
  GOBIN="$1" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# kube-apiserver: k8s.io/kubernetes has replace directives, so `go install`
# refuses it; the vendored wrapper module repeats them.
build_kube_apiserver() {
  go_install_or "$1" "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_APISERVER_VERSION" vendored_kube_apiserver
}
vendored_kube_apiserver() {
  local tmp minor=${KUBE_APISERVER_VERSION#v1.}
  minor=${minor%%.*}
  tmp=$(mktemp -d)
  cp "$VENDOR"/kube-apiserver/go.* "$tmp" && chmod u+w "$tmp"/go.*
  (cd "$tmp" && go build -ldflags "-X k8s.io/component-base/version.gitVersion=$KUBE_APISERVER_VERSION \
     -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
     -o "$1/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  rm -rf "$tmp"
}

# etcd: Debian's etcd-server package, extracted (never installed as a service).
build_etcd() {
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download "etcd-server=$ETCD_VERSION*" && dpkg -x etcd-server_*.deb root)
  cp "$tmp/root/usr/bin/etcd" "$1/etcd"
  rm -rf "$tmp"
}

# Kyverno's CLI: replace directives again, so it is built from the module source.
build_kubectl_kyverno() {
  GOBIN="$1" go install "github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno@$KYVERNO_VERSION" && return 0
  echo "go install was refused; building from the module source"
  local dir tmp
  dir=$(go mod download -json "github.com/kyverno/kyverno@$KYVERNO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || return 1
  tmp=$(mktemp -d)
  cp -r "$dir" "$tmp/kyverno" && chmod -R u+w "$tmp/kyverno"
  (cd "$tmp/kyverno" && go build -o "$1/kubectl-kyverno" ./cmd/cli/kubectl-kyverno)
  rm -rf "$tmp"
}

# Checkov in a virtualenv of its own (its pins clash with ours).
build_checkov() {
  local venv
  venv="$(dirname "$1")/venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  ln -sfn "$venv/bin/checkov" "$1/checkov"
}

status=0
for tool in "$@"; do
  case "$tool" in
    kube-linter) build kube-linter "$KUBE_LINTER_VERSION" build_kube_linter || status=1 ;;
    kubectl-validate) build kubectl-validate "$KUBECTL_VALIDATE_VERSION" build_kubectl_validate || status=1 ;;
    helm) build helm "$HELM_VERSION" build_helm || status=1 ;;
    kube-apiserver) build kube-apiserver "$KUBE_APISERVER_VERSION" build_kube_apiserver || status=1 ;;
    etcd) build etcd "$ETCD_VERSION" build_etcd || status=1 ;;
    kubectl-kyverno) build kubectl-kyverno "$KYVERNO_VERSION" build_kubectl_kyverno || status=1 ;;
    checkov) build checkov "$CHECKOV_VERSION" build_checkov || status=1 ;;
    *) say "unknown tool $tool"; status=1 ;;
  esac
done
exit $status
