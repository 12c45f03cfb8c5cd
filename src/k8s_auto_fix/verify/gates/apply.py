"""Gate 1, apply: the patch applies (RFC 6902, the `jsonpatch` library), its
paths exist, and it changes something."""

from __future__ import annotations

from ...contracts import Reason
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
            return before.with_data(apply_patch(before.data, ops))
        except PATCH_ERRORS as err:
            return self.reason(str(err) or type(err).__name__)

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        if change.after.data == change.before.data and not change.created:
            return [self.reason("the patch changes nothing")]
        return []


APPLY = ApplyGate()
