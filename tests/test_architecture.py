"""The package's shape: imports only go down, no cycles, check knowledge in checks/,
and an installed wheel carries everything it needs."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, write

PACKAGE = REPO / "src" / "k8s_auto_fix"
# Each part may import its own modules and the parts of lower layers, never a higher one.
LAYERS = [
    {"contracts", "patch", "defaults"},
    {"manifests"},
    {"checks"},
    {"config", "runner", "cluster"},
    {"engines"},
    {"detect"},
    {"verify"},
    {"propose"},
    {"fix", "risk", "schedule", "queue"},
    {"report"},
    {"streamed"},
    {"run", "inputs"},
    {"bench"},
    {"cli", "__init__"},
    {"__main__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every k8s_auto_fix module ``path`` imports, at the top or inside a function."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m.startswith("k8s_auto_fix")}


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    assert parts <= set(RANK), f"give these a layer: {parts - set(RANK)}"


def test_imports_only_go_down():
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _part(module) != _part(target) and RANK[_part(target)] >= RANK[_part(module)]
    ]
    assert not upward, upward


def test_no_import_cycles():
    graph = _graph()
    # A module's import of its own package (k8s_auto_fix.checks from checks.security) is
    # its package running first, not a cycle; only imports between modules count.
    edges = {m: {t for t in ts if t in graph and not m.startswith(t + ".")} for m, ts in graph.items()}
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not cycles, cycles


def _check_id_pattern() -> re.Pattern:
    from k8s_auto_fix.checks import REGISTRY

    ids = set(REGISTRY) | {alias for check in REGISTRY.values() for alias in check.aliases}
    alternatives = "|".join(sorted(map(re.escape, ids), key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9-])({alternatives})(?![a-z0-9-])")


def test_no_check_id_outside_checks():
    """Check knowledge lives with the checks: no other module names a check."""
    pattern = _check_id_pattern()
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "checks":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                match = pattern.search(node.value)
                if match:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {match.group()}")
    assert not offenders, offenders


def test_the_check_id_test_would_see_one():
    assert _check_id_pattern().search('ALLOWED = {"latest-tag": {"image"}}')


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(REPO)],
        check=True,
    )
    return next(out.glob("k8s_auto_fix-*.whl"))


def test_an_installed_wheel_run_elsewhere_has_its_guidance(wheel, tmp_path):
    """Installed (not editable) and run from another folder, the model prompt
    still carries the check's guidance and the gates' guidance."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = """
import k8s_auto_fix, json
from k8s_auto_fix.checks import REGISTRY
from k8s_auto_fix.contracts import Detection, ObjectRef, Reason
from k8s_auto_fix.propose.llm.prompt import build_messages
d = Detection(id="x", manifest_path="p.yaml", policy_id="run-as-non-root", violation_text="m",
              object=ObjectRef(apiVersion="v1", kind="Pod", name="p"), container="app")
messages = build_messages(d, REGISTRY[d.policy_id], {"kind": "Pod"}, [Reason(gate="schema", message="bad field")])
print(json.dumps({"file": k8s_auto_fix.__file__, "text": "\\n".join(m["content"] for m in messages)}))
"""
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["file"].startswith(str(site)), result["file"]  # the wheel's copy, not the source tree
    text = " ".join(result["text"].split())
    assert "Pod Security Standards (restricted) require runAsNonRoot" in text
    assert "strict Kubernetes schema" in text
    facts = subprocess.run(
        [sys.executable, "-c", "from k8s_auto_fix.manifests.images import shipped_facts; print(shipped_facts().lookup('nginx').user)"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )
    assert facts.stdout.strip() == "0", facts.stderr  # the image facts data file ships too


def test_a_kube_linter_config_is_a_run_configuration(tmp_path):
    from k8s_auto_fix.config import load_config

    path = write(
        tmp_path,
        ".kube-linter.yaml",
        """
        checks:
          doNotAutoAddDefaults: true
          include: [latest-tag]
        customChecks:
          - name: no-nodeport
            template: forbidden-service-types
            params: {forbiddenServiceTypes: [NodePort]}
        """,
    )
    config = load_config(path)
    assert config.checks.include == ["latest-tag"] and config.custom_checks[0].name == "no-nodeport"
    assert config.proposer.mode == "rules" and "grok" in config.endpoints


def test_presets_hold_only_what_differs(tmp_path):
    from k8s_auto_fix.config import load_config

    grok = load_config(REPO / "configs" / "run_grok.yaml")
    assert grok.proposer.mode == "grok" and grok.endpoint("grok").api_key_env == "XAI_API_KEY"
    assert len((REPO / "configs" / "run_grok.yaml").read_text().splitlines()) < 6
    legacy = write(tmp_path, "old.yaml", "vendor:\n  endpoint: http://localhost:9/v1\n  model: m\n")
    assert load_config(legacy).endpoint("vendor").endpoint == "http://localhost:9/v1"
