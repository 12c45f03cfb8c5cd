"""Object name formats the API server enforces beyond the OpenAPI schema."""

from __future__ import annotations

import re

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def name_errors(obj: dict) -> list[str]:
    """What the API server checks beyond the schema: name and namespace formats."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    errors = []
    name, namespace = meta.get("name"), meta.get("namespace")
    if isinstance(name, str) and (len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name)):
        errors.append(f"metadata.name {name!r} is not a lowercase RFC 1123 subdomain")
    if isinstance(namespace, str) and namespace and (len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace)):
        errors.append(f"metadata.namespace {namespace!r} is not a lowercase RFC 1123 label")
    return errors
