"""The node's current policy snapshot: read by every request, replaced whole, kept in LMDB.

Requests read :attr:`PolicyHolder.current` (one attribute read, never a half-updated
policy); :meth:`PolicyHolder.replace` stores a newer snapshot first and then swaps it in,
so a restart serves the last snapshot the node accepted, even with no coordinator around.
The other worker processes of the node pick a stored snapshot up with
:meth:`PolicyHolder.reload`.

With a :class:`node.auth.sealing.SnapshotSeal` the stored snapshot is sealed (it holds
the upstreams' credentials); an unsealed one found at start is read and sealed in place.
A sealed snapshot the seal cannot open stops the node (:class:`SealError`) instead of
being ignored: ignoring it would serve an older policy without its upstream credentials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from node.auth.sealing import SealError, SnapshotSeal
from node.storage.base import MetadataStore
from portmesh.policy import Policy, PolicyError
from portmesh.tokens import KeySet

__all__ = ["POLICY_KEY", "PolicyHolder", "PolicyState"]

log = logging.getLogger("portmesh.node.auth")

#: the MetadataStore setting the snapshot is kept under
POLICY_KEY = "policy"


@dataclass(frozen=True)
class PolicyState:
    """A policy and what is derived from it once: the verification keys."""

    policy: Policy
    keyset: KeySet


class PolicyHolder:
    """Holds the current :class:`PolicyState`; ``local_keys`` (the node's own token keys)
    are added to every snapshot's key set. With ``seal`` the snapshot is stored sealed;
    without, in the clear (for a store that never leaves memory)."""

    def __init__(
        self,
        meta: MetadataStore,
        state: PolicyState,
        local_keys: KeySet,
        seal: SnapshotSeal | None = None,
    ) -> None:
        self._meta = meta
        self._local_keys = local_keys
        self._state = state
        self._seal = seal

    @classmethod
    async def open(
        cls,
        meta: MetadataStore,
        local_keys: KeySet,
        initial: Policy | None = None,
        *,
        seal: SnapshotSeal | None = None,
    ) -> PolicyHolder:
        """Load the stored snapshot; ``initial`` (from a policy file) replaces it when it
        is newer or none is stored. Raises PolicyError when neither exists, SealError when
        the stored snapshot is sealed and ``seal`` cannot open it (or is None)."""
        stored: Policy | None = None
        raw = await meta.get_setting(POLICY_KEY)
        was_sealed = raw is not None and SnapshotSeal.is_sealed(raw)
        if raw is not None:
            data = _unseal(raw, seal)
            try:
                stored = Policy.from_bytes(data)
            except PolicyError:
                log.exception("the stored policy snapshot is unreadable; ignoring it")
        chosen = stored
        if initial is not None and (stored is None or initial.version > stored.version):
            chosen = initial
        if chosen is None:
            raise PolicyError("no policy snapshot: configure a policy file or a coordinator")
        holder = cls(meta, cls._derive(chosen, local_keys), local_keys, seal)
        if chosen is not stored or (seal is not None and not was_sealed):
            await holder._store(chosen)
        log.info("serving policy version %d", chosen.version)
        return holder

    @staticmethod
    def _derive(policy: Policy, local_keys: KeySet) -> PolicyState:
        return PolicyState(policy, policy.keyset().merged(local_keys))

    async def _store(self, policy: Policy) -> None:
        data = policy.to_bytes()
        await self._meta.put_setting(
            POLICY_KEY, data if self._seal is None else self._seal.seal(data)
        )

    @property
    def current(self) -> PolicyState:
        return self._state

    async def reload(self) -> bool:
        """Adopt the stored snapshot if another process of this node stored a newer one;
        True if it did. An unreadable stored snapshot leaves the current one in place."""
        raw = await self._meta.get_setting(POLICY_KEY)
        if raw is None:
            return False
        try:
            policy = Policy.from_bytes(_unseal(raw, self._seal))
            if policy.version <= self._state.policy.version:
                return False
            self._state = self._derive(policy, self._local_keys)
        except (PolicyError, SealError):
            log.exception(
                "the stored policy snapshot is unreadable; keeping version %d",
                self._state.policy.version,
            )
            return False
        log.info("now serving policy version %d", policy.version)
        return True

    async def replace(self, policy: Policy) -> bool:
        """Store and serve ``policy`` if it is newer than the current one; False (and no
        change) if it is not. Raises PolicyError for a snapshot with unusable keys."""
        if policy.version <= self._state.policy.version:
            return False
        state = self._derive(policy, self._local_keys)
        await self._store(policy)
        if policy.version <= self._state.policy.version:  # a newer one won meanwhile
            return False
        self._state = state
        log.info("now serving policy version %d", policy.version)
        return True


def _unseal(raw: bytes, seal: SnapshotSeal | None) -> bytes:
    """The snapshot bytes of a stored value, sealed or (written by an older node) not."""
    if not SnapshotSeal.is_sealed(raw):
        return raw
    if seal is None:
        raise SealError("the stored policy snapshot is sealed and no key file was given")
    return seal.open(raw)
