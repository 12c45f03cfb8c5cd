"""Helm charts as input: linted as `helm template` renders them.

A folder with ``Chart.yaml`` is one application, as for kube-linter. Its
objects are the rendered ones, each pointing back at the template file that
made it through the ``# Source:`` comment Helm writes before every document
(``templates/deployment.yaml``), at the line of that template's ``kind:``
where it can be found. The chart is rendered as kube-linter renders it: the
release ``test-release`` in namespace ``default``, the chart's own
``values.yaml``, CRDs left out; the user's ``--values`` and ``--set`` go on
top (see ``HelmOptions``). The templates are never rewritten: a fix of a
rendered object becomes a values override or a post-renderer patch
(``fix/chart.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ..contracts import Problem
from .objects import K8sObject

# kube-linter's release options (pkg/lintcontext/parse_yaml.go), so object names agree.
RELEASE = "test-release"
NAMESPACE = "default"
# A Helm built without its release ldflags claims Kubernetes v1.20 and then
# refuses charts with a newer `kubeVersion`; this is the version the schema gates use.
KUBE_VERSION = "1.30"
_SOURCE = re.compile(r"^# Source: (.+)$", re.M)


@dataclass(frozen=True)
class HelmOptions:
    """How charts are rendered: the user's values on top of the chart's."""

    values: tuple[str, ...] = ()  # --values files
    set_values: tuple[str, ...] = ()  # --set key=value
    release: str = RELEASE
    kube_version: str = KUBE_VERSION


# Set once by the command before any chart is loaded; worker processes inherit
# it when forked, and the object store reads charts with the same values.
_options = HelmOptions()


def configure(options: HelmOptions) -> None:
    global _options
    _options = options


def current() -> HelmOptions:
    return _options


def is_chart(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "Chart.yaml"))


class HelmError(Exception):
    pass


def helm_binary() -> str:
    """helm on PATH, in the clone's .tools/bin, or $HELM."""
    here = os.path.dirname(os.path.abspath(__file__))
    tools = os.path.join(here, "..", "..", "..", ".tools", "bin", "helm")
    for candidate in (os.environ.get("HELM"), shutil.which("helm"), tools):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise HelmError("helm is not installed (needed to render a chart): put it on PATH or set $HELM")


def template(chart: str, options: HelmOptions | None = None, extra_values: tuple[str, ...] = ()) -> str:
    """`helm template` of ``chart``: the rendered text (raises HelmError)."""
    options = options or _options
    command = [helm_binary(), "template", options.release, chart, "--namespace", NAMESPACE, "--kube-version", options.kube_version]
    for path in (*options.values, *extra_values):
        command += ["--values", path]
    for assignment in options.set_values:
        command += ["--set", assignment]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        message = " ".join(line for line in proc.stderr.strip().splitlines() if line and not line.startswith("Use --debug")) or "no output"
        raise HelmError(f"helm template failed: {message[-400:]}")
    return proc.stdout


def render(chart: str, parse_manifest_text) -> tuple[list[K8sObject], list[Problem]]:
    """The objects ``chart`` renders to, each at its template file (each
    document read by the loader's ``parse_manifest_text``)."""
    try:
        text = template(chart)
    except HelmError as err:
        return [], [Problem(chart, str(err))]
    objects: list[K8sObject] = []
    problems: list[Problem] = []
    for index, (source, document) in enumerate(rendered_documents(text)):
        path = template_path(chart, source) if source else os.path.join(chart, "Chart.yaml")
        found, trouble = parse_manifest_text(path, document)
        problems += [p for p in trouble if p.level != "note"]
        for obj in found:
            obj.document_index, obj.line = index, template_line(path, obj.kind)
            obj.built_by = obj.chart = chart
            objects.append(obj)
    return objects, problems


def rendered_documents(text: str) -> list[tuple[str | None, str]]:
    """(the `# Source:` of each document, its text) of `helm template` output."""
    documents = []
    for chunk in re.split(r"^---[ \t]*$", text, flags=re.M):
        if not chunk.strip():
            continue
        source = _SOURCE.search(chunk)
        documents.append((source.group(1).strip() if source else None, chunk.lstrip("\n")))
    return documents


def template_path(chart: str, source: str) -> str:
    """``podinfo/templates/x.yaml`` -> CHART/templates/x.yaml (Helm prefixes the chart's name,
    which need not be the folder's; a subchart's source is under charts/NAME/). A
    subchart shipped as an archive (charts/NAME-1.0.0.tgz) has no template file
    to point at: its objects point at the archive."""
    path = os.path.join(chart, source.split("/", 1)[1] if "/" in source else source)
    parts = source.split("/")
    if len(parts) > 3 and parts[1] == "charts" and not os.path.isfile(path):
        folder = os.path.join(chart, "charts")
        archives = sorted(n for n in os.listdir(folder) if n.startswith(parts[2] + "-") and n.endswith(".tgz")) if os.path.isdir(folder) else []
        if archives:
            return os.path.join(folder, archives[0])
    return path


def template_line(path: str, kind: str) -> int:
    """The line of the template's ``kind: KIND`` when there is exactly one, else 1."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return 1
    pattern = re.compile(r"^kind:[ \t]*[\"']?%s[\"']?[ \t]*(?:#.*)?$" % re.escape(kind))
    found = [n for n, line in enumerate(lines, 1) if pattern.match(line)]
    return found[0] if len(found) == 1 else 1
