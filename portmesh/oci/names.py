"""Repository names and tags as the distribution spec's grammar defines them."""

from __future__ import annotations

import re

from portmesh.oci.errors import OCIError

__all__ = ["MAX_NAME_LENGTH", "check_name", "check_tag", "is_tag"]

MAX_NAME_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NAME_INVALID."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise OCIError("NAME_INVALID", "invalid repository name", {"name": name[:300]})
    return name


def is_tag(reference: str) -> bool:
    return bool(_TAG.match(reference))


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise OCIError("TAG_INVALID", "invalid tag", {"tag": tag[:200]})
    return tag
