"""Container images: tags that do not pin what runs."""

from __future__ import annotations

from ..contracts import Applicability, Severity
from .common import WORKLOADS, Hit, go_quote, go_quote_list, go_regex, per_container
from .patching import set_value
from .registry import Fix, FixContext, Proposal, check, template

# --- latest-tag ---------------------------------------------------------------------


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
            yield Hit(
                f"The container {name} is using an invalid container image, {go_quote(image)}. "
                f"Please use images that are not blocked by the `BlockList` criteria : {go_quote_list(BlockList)}",
                ("image",),
                image,
            )
        elif allowed and not any(p.search(image) for p in allowed):
            yield Hit(
                f"The container {name} is using an invalid container image, {go_quote(image)}. "
                f"Please use images that satisfies the `AllowList` criteria : {go_quote_list(AllowList)}",
                ("image",),
                image,
            )

    return per_container(rule)


def _fix_latest_tag(ctx: FixContext) -> Proposal | None:
    """Only a user-supplied pin replaces an image: a tag is never invented."""
    image = str(ctx.container.spec.get("image") or "")
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    pinned = ctx.image_pins.get(image) or ctx.image_pins.get(repository)
    if not pinned:
        return Proposal.manual(f"no pin for {image!r}: add it to the --image-pins file (image -> tag or digest)")
    return Proposal(set_value(ctx.obj.data, (*ctx.container.segments, "image"), pinned), explanation=f"{image} -> {pinned}")


check(
    "latest-tag", "latest-tag",
    # An explicit :latest, no tag at all, or a registry port mistaken for a tag.
    {"BlockList": [".*:(latest)$", "^[^:]*$", "(.*/[^:]+)$"]},
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when a deployment-like object is running a container with an invalid container image",
    remediation="Use a container image with a specific tag other than latest.",
    fix=Fix(
        Applicability.SAFE,
        "Applied only with a pin the user supplied (--image-pins); without one the fix is manual.",
        _fix_latest_tag,
        remedy=("container.image",),
    ),
    guidance="""
Never invent an image tag. Only replace an image with a tag or digest the user supplied. If none was supplied, answer
with an empty array `[]`.
""",
    aliases=("no-latest-tag",),
)
