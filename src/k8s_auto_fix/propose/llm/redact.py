"""Secrets never leave the machine: redact before anything is sent.

Replaced by placeholders: every value of a Secret's ``data`` and
``stringData``; the ``value`` of any environment variable whose name looks
secret (password, token, key, credential, ...); annotation and ConfigMap
values under such names; and any string that looks like a credential
(private keys, bearer tokens, long base64/hex blobs after a secret-like key).
A model patch that writes a placeholder back is refused by the guards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECRET_NAME = re.compile(r"(?i)(secret|passw(or)?d|passwd|pwd|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth|cert|signing)")
CREDENTIAL_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|(?i:bearer\s+[a-z0-9._~+/-]{16,})|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bxox[abp]-[A-Za-z0-9-]{10,}")
PLACEHOLDER = "<redacted-{n}>"
PLACEHOLDER_PATTERN = re.compile(r"<redacted-\d+>")


@dataclass
class Redaction:
    """The redacted copy of an object, and what each placeholder stands for."""

    data: dict
    originals: dict[str, str] = field(default_factory=dict)


def redact(obj: dict) -> Redaction:
    result = Redaction({})
    counter = iter(range(1, 1_000_000))

    def hide(value: object) -> str:
        token = PLACEHOLDER.format(n=next(counter))
        result.originals[token] = str(value)
        return token

    def walk(node, key: str | None, secret_context: bool):
        if isinstance(node, dict):
            out = {}
            env_like = "name" in node and ("value" in node or "valueFrom" in node)
            for k, v in node.items():
                if secret_context and not isinstance(v, (dict, list)):
                    out[k] = hide(v)
                elif env_like and k == "value" and SECRET_NAME.search(str(node.get("name", ""))):
                    out[k] = hide(v)
                else:
                    out[k] = walk(v, str(k), False)
            return out
        if isinstance(node, list):
            return [walk(v, key, False) for v in node]
        if isinstance(node, str) and (CREDENTIAL_VALUE.search(node) or (key and SECRET_NAME.search(key) and len(node) >= 8)):
            return hide(node)
        return node

    data = {}
    for k, v in obj.items():
        if obj.get("kind") == "Secret" and k in ("data", "stringData") and isinstance(v, dict):
            data[k] = {name: hide(value) for name, value in v.items()}
        else:
            data[k] = walk(v, k, False)
    result.data = data
    return result


def mentions_placeholder(ops: list[dict]) -> bool:
    """True when a patch writes a placeholder (a redacted value) back."""
    return bool(PLACEHOLDER_PATTERN.search(repr([op.get("value") for op in ops])))
