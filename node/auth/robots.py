"""Robot account logins checked against the policy snapshot, with a short result cache.

An argon2id verification costs about 50 ms on purpose; a CI job logs in and then asks for
a token per repository, so successful checks are remembered for ``ttl`` seconds, keyed by
the robot, a hash of the secret given, and the stored hash (a changed secret in a new
snapshot invalidates the entry). Failures are never cached. Verification runs in a worker
thread so the event loop keeps serving pulls meanwhile.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

import trio

from portmesh.passwords import verify_secret
from portmesh.policy import Policy, Robot

__all__ = ["RobotRefused", "RobotVerifier"]


class RobotRefused(Exception):
    """The robot may not log in; the message says why (safe to show the client)."""


class RobotVerifier:
    def __init__(
        self, *, ttl: float = 60.0, size: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._ok: OrderedDict[tuple[str, bytes, str], float] = OrderedDict()

    async def check(self, policy: Policy, name: str, secret: str, now: float) -> Robot:
        """The robot ``name`` if ``secret`` is its secret and it may log in at ``now``;
        else :class:`RobotRefused`. The secret is checked first, so a wrong secret never
        learns whether the account is revoked, disabled or expired."""
        robot = policy.robots.get(name)
        if robot is None:
            raise RobotRefused(f"unknown robot account {name[:100]!r}")
        key = (name, hashlib.sha256(secret.encode()).digest(), robot.secret_hash)
        seen = self._ok.get(key)
        if seen is None or self._clock() - seen >= self._ttl:
            if not await trio.to_thread.run_sync(verify_secret, robot.secret_hash, secret):
                raise RobotRefused("invalid robot account credentials")
            self._ok[key] = self._clock()
            self._ok.move_to_end(key)
            while len(self._ok) > self._size:
                self._ok.popitem(last=False)
        if name in policy.revoked.robots:
            raise RobotRefused(f"robot account {name!r} has been revoked")
        if robot.disabled:
            raise RobotRefused(f"robot account {name!r} is disabled")
        if robot.expired(now):
            raise RobotRefused(f"robot account {name!r} has expired")
        return robot
