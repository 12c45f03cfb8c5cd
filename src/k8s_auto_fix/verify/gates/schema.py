"""Gate 4, schema: the patched object (and any object the patch creates) has
no schema error the original did not have. Offline by default (strict
OpenAPI schemas, see ../schema.py); ``kubectl-validate`` or a server dry run
on request, each run once on the whole batch (see ../external.py)."""

from __future__ import annotations

from collections.abc import Sequence

from ...contracts import Reason, SchemaMode
from ..judging import Change, Judging
from .base import Gate


class SchemaGate(Gate):
    name = "schema"
    guidance = """
The patched object must stay valid against the strict Kubernetes schema. Use only fields Kubernetes knows, in the
right place: `readOnlyRootFilesystem`, `runAsNonRoot`, `allowPrivilegeEscalation`, `capabilities` and
`seccompProfile` belong in a container's `securityContext`; `volumes` belongs to the pod spec; quantities are strings
such as `"100m"` or `"512Mi"`.
"""

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        validator = judging.validator()
        errors = validator.new_errors(change.before.data, change.after.data, change.ops)
        for obj in change.created:
            errors += validator.errors(obj.data)
        return [self.reason(e) for e in errors]

    def judge_all(self, changes: Sequence[Change], judging: Judging) -> list[list[Reason]]:
        if judging.options.schema is SchemaMode.OFFLINE:
            return super().judge_all(changes, judging)
        from ..external import schema_errors

        return [[self.reason(e) for e in errors] for errors in schema_errors(changes, judging.options, judging.crds())]


SCHEMA = SchemaGate()
