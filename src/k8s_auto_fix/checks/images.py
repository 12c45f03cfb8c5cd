"""Container images: tags that do not pin what runs."""

from __future__ import annotations

from .common import WORKLOADS, go_quote, go_quote_list, go_regex, per_container
from .registry import Severity, check, template


@template("latest-tag")
def latest_tag(BlockList=(), AllowList=()):
    if BlockList and AllowList:
        raise TypeError("BlockList and AllowList cannot both be set")

    blocked = [go_regex(p) for p in BlockList]
    allowed = [go_regex(p) for p in AllowList]

    def rule(c, obj):
        image = str(c.spec.get("image") or "")
        name = go_quote(c.name)
        if blocked and any(p.search(image) for p in blocked):
            yield (
                f"The container {name} is using an invalid container image, {go_quote(image)}. "
                f"Please use images that are not blocked by the `BlockList` criteria : {go_quote_list(BlockList)}"
            )
        elif allowed and not any(p.search(image) for p in allowed):
            yield (
                f"The container {name} is using an invalid container image, {go_quote(image)}. "
                f"Please use images that satisfies the `AllowList` criteria : {go_quote_list(AllowList)}"
            )

    return per_container(rule)


check(
    "latest-tag",
    template="latest-tag",
    # An explicit :latest, no tag at all, or a registry port mistaken for a tag.
    params={"BlockList": [".*:(latest)$", "^[^:]*$", "(.*/[^:]+)$"]},
    description="Indicates when a deployment-like object is running a container with an invalid container image",
    remediation="Use a container image with a specific tag other than latest.",
    severity=Severity.MEDIUM,
    scope=WORKLOADS,
)
