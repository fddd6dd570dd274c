"""Naming rules of hosted registries, checked before a request is made.

Hosted registries put every repository under an owner (a user, organisation, project or
group): ``ghcr.io/<owner>/<image>``, ``quay.io/<namespace>/<repo>``, Harbor's
``<project>/<repo>``. A name without that first segment cannot exist there, so the
adapter says why instead of sending a request that can only fail.
"""

from __future__ import annotations

from .errors import NotFound

__all__ = ["require_owner"]


def require_owner(repo: str, provider: str, form: str) -> str:
    """``repo`` when it has an owner segment, else NotFound naming the expected ``form``
    (``<owner>/<image>``)."""
    owner, slash, rest = repo.partition("/")
    if not slash or not owner or not rest:
        raise NotFound(f"{provider}: {repo!r} is not a repository name there (names are {form})")
    return repo
