"""Image facts: the user an image runs as and the paths it writes.

A fix that changes how a container starts (its user, a read-only root
filesystem) is only right if the image agrees. The facts come from a data
file shipped in the package (data/image_facts.yaml, the most used official
images), from the user's ``--image-facts`` files in the same format, and
from Trivy image reports (``Metadata.ImageConfig.config.User``).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

UNKNOWN = "unknown"


class ImageFactsError(ValueError):
    pass


class ImageFact(BaseModel):
    """What is known about one image (every field optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: int | None = None  # the uid it runs as: 0 is root
    needs_root: bool = False  # started as another user, it fails
    nonroot_uid: int | None = None  # a uid it is built to run as
    writes: list[str] | Literal["unknown"] | None = None  # paths written outside /tmp; None: not known
    nonroot_variant: str | None = None  # offered in text, never applied

    @property
    def runs_as_non_root(self) -> bool:
        return self.user is not None and self.user > 0

    @property
    def writes_unknown_places(self) -> bool:
        return self.writes == UNKNOWN


@dataclass(frozen=True)
class ImageFacts:
    """Facts by key: exact repository paths, globs over them, and last path components."""

    entries: dict[str, ImageFact] = field(default_factory=dict)
    _found: dict = field(default_factory=dict, compare=False, repr=False)  # image -> fact, as looked up

    def lookup(self, image: str) -> ImageFact | None:
        if image not in self._found:
            self._found[image] = self._lookup(repository_path(image))
        return self._found[image]

    def _lookup(self, path: str) -> ImageFact | None:
        if not path:
            return None
        if path in self.entries:
            return self.entries[path]
        for pattern in self._patterns:
            if fnmatch.fnmatchcase(path, pattern):
                return self.entries[pattern]
        return self.entries.get(path.rpartition("/")[2])

    @cached_property
    def _patterns(self) -> list[str]:
        return sorted((k for k in self.entries if any(c in k for c in "*?[")), key=len, reverse=True)

    def merged(self, other: ImageFacts) -> ImageFacts:
        """These facts with ``other``'s on top, field by field."""
        entries = dict(self.entries)
        for key, fact in other.entries.items():
            base = entries.get(key)
            entries[key] = base.model_copy(update=fact.model_dump(exclude_unset=True)) if base else fact
        return replace(self, entries=entries)


def repository_path(image: str) -> str:
    """'docker.io/library/nginx:1.25@sha256:..' -> 'nginx'; 'quay.io/prometheus/prometheus:v2' -> 'prometheus/prometheus'."""
    name = str(image or "").strip().split("@", 1)[0]
    head, _, last = name.rpartition("/")
    name = f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry host
    if parts and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts)


def parse_facts(data: object, source: str) -> ImageFacts:
    if data is None:
        return ImageFacts()
    if not isinstance(data, dict):
        raise ImageFactsError(f"{source}: image facts map image names to facts")
    entries = {}
    for key, value in data.items():
        try:
            entries[repository_path(str(key))] = ImageFact.model_validate(value or {})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ImageFactsError(f"{source}: {key}.{where}: {first['msg']}") from None
    return ImageFacts(entries)


@lru_cache(maxsize=1)
def shipped_facts() -> ImageFacts:
    text = files("k8s_auto_fix").joinpath("data", "image_facts.yaml").read_text(encoding="utf-8")
    return parse_facts(yaml.safe_load(text), "image_facts.yaml (shipped)")


def load_facts(paths: Iterable[Path] = (), trivy_reports: Iterable[Path] = ()) -> ImageFacts:
    """The shipped facts, then each ``--image-facts`` file, then what Trivy reports say of users."""
    facts = shipped_facts()
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise ImageFactsError(f"{path}: cannot read image facts: {err}") from None
        facts = facts.merged(parse_facts(data, str(path)))
    for report in trivy_reports:
        facts = facts.merged(trivy_user_facts(Path(report)))
    return facts


def trivy_user_facts(path: Path) -> ImageFacts:
    """The image user from a `trivy image --format json` report, as a fact about that image."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ImageFactsError(f"{path}: not a Trivy JSON report: {err}") from None
    image = report.get("ArtifactName") if isinstance(report, dict) else None
    config = ((report.get("Metadata") or {}).get("ImageConfig") or {}).get("config") or {} if isinstance(report, dict) else {}
    user = parse_user(config.get("User"))
    if not image or user is None:
        return ImageFacts()
    return ImageFacts({repository_path(image): ImageFact.model_validate({"user": user})})


def parse_user(value: object) -> int | None:
    """An image's USER as a uid: empty or root is 0; a user name gives no uid."""
    text = str(value if value is not None else "").strip().split(":", 1)[0]
    if text in ("", "root"):
        return 0
    return int(text) if text.isdigit() else None
