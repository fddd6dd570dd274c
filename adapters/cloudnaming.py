"""Repository naming rules of the cloud registries (ECR, Artifact Registry, ACR, SWR,
Alibaba ACR), checked before a request is made so a name the provider cannot hold gets
a clear :class:`~adapters.errors.NotFound` that states the rule, not a round trip."""

from __future__ import annotations

import re

from .errors import NotFound

__all__ = ["NameRule"]


class NameRule:
    """A provider's repository naming rule: a full-match pattern, a length range, and a
    minimum number of path segments (``<namespace>/<repo>`` needs 2)."""

    def __init__(
        self,
        provider: str,
        pattern: str,
        *,
        min_length: int = 1,
        max_length: int = 256,
        min_segments: int = 1,
        form: str = "",
    ) -> None:
        self.provider = provider
        self.pattern = re.compile(pattern)
        self.min_length = min_length
        self.max_length = max_length
        self.min_segments = min_segments
        self.form = form or pattern

    def __repr__(self) -> str:
        return f"NameRule({self.provider!r}, {self.pattern.pattern!r})"

    def check(self, repo: str) -> str:
        """``repo`` when it follows the rule, else NotFound naming the rule."""
        problem = None
        if not self.min_length <= len(repo) <= self.max_length:
            problem = f"it must be {self.min_length} to {self.max_length} characters"
        elif repo.count("/") + 1 < self.min_segments or self.pattern.fullmatch(repo) is None:
            problem = f"names there are {self.form}"
        if problem is not None:
            raise NotFound(f"{self.provider}: {repo!r} is not a valid repository name ({problem})")
        return repo
