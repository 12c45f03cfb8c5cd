"""Gate 1, apply: the patch applies (RFC 6902, the `jsonpatch` library), its
paths exist, it leaves every field the type Kubernetes gives it (a patch that
writes ``capabilities: ALL`` is refused here, before any gate reads the
object), and it changes something."""

from __future__ import annotations

from ...contracts import Reason
from ...manifests.decoding import decode_failure
from ...manifests.objects import K8sObject
from ...patch import PATCH_ERRORS, apply_patch
from ..judging import Change, Judging
from .base import Gate


class ApplyGate(Gate):
    name = "apply"
    guidance = """
Every path must exist in the object as the previous operations leave it: `add` needs an existing parent (add a whole
map at the first missing level), `replace` and `remove` need the path itself, and list indices count from 0. Escape
`~` as `~0` and `/` as `~1` in keys.
"""

    def apply(self, before: K8sObject, ops: list[dict]) -> K8sObject | Reason:
        """The patched object, or why the patch does not apply."""
        try:
            after = before.with_data(apply_patch(before.data, ops))
        except PATCH_ERRORS as err:
            return self.reason(str(err) or type(err).__name__)
        problem = mistyped(after.data, before.data)
        return self.reason(f"the patched object is mistyped: {problem}") if problem else after

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        if change.after.data == change.before.data and not change.created:
            return [self.reason("the patch changes nothing")]
        return []


APPLY = ApplyGate()


def mistyped(data: object, before: object = None) -> str | None:
    """Why ``data`` is no object of its kind that the patch (``before`` is the
    object it started from) made so: a type error, or a value its type cannot
    parse that ``before`` did not have (manifests/decoding.py, the loader's
    own rule). None when it is fine."""
    if not isinstance(data, dict):
        return "not a mapping"
    failure = decode_failure(data)
    if failure is None or (not failure.fatal and isinstance(before, dict) and decode_failure(before) is not None):
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in failure.path).lstrip(".") or "the object"
    return f"{where}: {failure.message}"
