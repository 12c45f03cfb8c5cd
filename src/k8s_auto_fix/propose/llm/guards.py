"""Guards on a model's answer: only a strict, relevant RFC 6902 patch gets through.

1. Strip code fences and prose; take the first top-level JSON array.
2. Every element is an operation RFC 6902 allows, with the fields it needs.
3. Paths exist where the operation needs them (remove, replace, test, and the
   ``from`` of move/copy); an add's parent exists.
4. At most ``max_ops`` operations.
5. Relevance: an operation may only touch the object's ``spec`` (``data`` for
   a ConfigMap or Secret); when the finding names a container, no other
   container; never apiVersion, kind, metadata, a selector or pod labels.
6. Scope: it writes only what the finding's check names as its remedy (the
   same allow-list the runnability gate uses), never a whole container or pod
   spec, never adds or removes containers, and never changes image, command,
   args, env, node placement, tolerations, replicas, hostAliases or shared
   namespaces (``checks.fixes.MODEL_NEVER_WRITES``).
7. It does not write a redacted placeholder back.

The answer is untrusted: its size and nesting are bounded before it is parsed.
"""

from __future__ import annotations

import json

from ...checks.fixes import fix_of, model_scope_errors
from ...manifests.objects import K8sObject
from ...patch import PATCH_ERRORS, apply_patch
from .redact import mentions_placeholder

OPS = {"add": ("path", "value"), "remove": ("path",), "replace": ("path", "value"), "move": ("from", "path"), "copy": ("from", "path"), "test": ("path", "value")}
PROTECTED = ("/apiVersion", "/kind", "/metadata")
MAX_ANSWER_CHARS = 200_000  # far above any real patch; the parser never sees more
MAX_DEPTH = 64  # JSON nesting; a manifest patch needs a dozen levels at most


class GuardError(ValueError):
    pass


def extract_json_array(text: str) -> list:
    """The first top-level JSON array in ``text`` (fences and prose around it are
    ignored). Bounded: a long or deeply nested answer is refused before parsing
    (Python's decoder recurses once per level), and each candidate is tried once."""
    if len(text) > MAX_ANSWER_CHARS:
        raise GuardError(f"answer of {len(text)} characters, more than the {MAX_ANSWER_CHARS} allowed")
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        raise GuardError(f"answer nested {depth} levels deep, more than the {MAX_DEPTH} allowed")
    decoder = json.JSONDecoder()
    start = text.find("[")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            start = text.find("[", start + 1)
            continue
        if isinstance(value, list):
            return value
        start = text.find("[", end)
    raise GuardError("no top-level JSON array in the answer")


def _max_depth(text: str) -> int:
    """The deepest bracket nesting in ``text``, brackets inside JSON strings ignored."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def check_patch(text: str, obj: K8sObject, container: str | None, max_ops: int, check_id: str) -> list[dict]:
    """The operations of the model's answer ``text`` for the finding of
    ``check_id`` on ``container`` of ``obj``, or GuardError saying why not."""
    ops = extract_json_array(text)
    if not ops:
        raise GuardError("empty patch")
    if len(ops) > max_ops:
        raise GuardError(f"{len(ops)} operations, more than the {max_ops} allowed")
    root, own, others = allowed_paths(obj, container)
    for index, op in enumerate(ops):
        _check_op(index, op, root, own, others)
    if mentions_placeholder(ops):
        raise GuardError("the patch writes a redacted placeholder back")
    _check_scope(ops, obj, container, check_id)
    _check_paths_exist(ops, obj.data)
    return ops


def allowed_paths(obj: K8sObject, container: str | None) -> tuple[str, str | None, list[str]]:
    """(the root ops must stay under, the named container, the other containers)."""
    root = "/data" if obj.kind in ("ConfigMap", "Secret") else "/spec"
    named = obj.container_named(container)
    if named is None:
        return root, None, []
    return root, named.pointer, [c.pointer for c in obj.containers if c is not named]


def _inside(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _check_op(index: int, op: object, root: str, own: str | None, others: list[str]) -> None:
    if not isinstance(op, dict) or op.get("op") not in OPS:
        raise GuardError(f"operation {index}: not an RFC 6902 operation: {json.dumps(op)[:120]}")
    for required in OPS[op["op"]]:
        if required not in op:
            raise GuardError(f"operation {index}: {op['op']} needs {required!r}")
    for key in ("path", "from"):
        if key in op:
            path = op[key]
            if not isinstance(path, str) or (path and not path.startswith("/")):
                raise GuardError(f"operation {index}: {key} {path!r} is not a JSON Pointer")
            if path.startswith(PROTECTED) or "/selector" in path or "/template/metadata" in path:
                raise GuardError(f"operation {index}: {path} is not the finding's to change")
            if not _inside(path, root):
                raise GuardError(f"operation {index}: {path} is outside {root}")
            if own is not None and any(_inside(path, other) for other in others):
                raise GuardError(f"operation {index}: {path} belongs to another container than the finding's")


def _check_scope(ops: list[dict], obj: K8sObject, container: str | None, check_id: str) -> None:
    fix = fix_of(check_id)
    for index, op in enumerate(ops):
        errors = model_scope_errors(obj, container, fix, op)
        if errors:
            raise GuardError(f"operation {index}: " + "; ".join(dict.fromkeys(errors)))


def _check_paths_exist(ops: list[dict], data: dict) -> None:
    """Apply the operations one by one (on a copy that shares untouched parts):
    each must find the paths it needs in the object as the earlier ones left it."""
    current = data
    for index, op in enumerate(ops):
        try:
            current = apply_patch(current, [op])
        except PATCH_ERRORS as err:
            raise GuardError(f"operation {index}: {err}") from None
