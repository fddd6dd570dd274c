"""Huawei SWR's login as the adapter meets it: a Docker token service at SWR's path that
takes ``<region>@<AK>`` with the long-term login key, which the front derives with the
``openssl`` command line Huawei's documentation gives (not with the adapter's code)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from fronts.common import TokenFlow

REGION = "ap-southeast-3"
AK, SK = "HPUAPORTMESH0TESTAK1", "swr-secret-key-0123456789abcdefghijklmn"


def documented_login_key(ak: str, sk: str) -> str:
    """``printf AK | openssl dgst -binary -sha256 -hmac SK | od -An -vtx1``, spaces dropped."""
    digest = subprocess.run(
        ["openssl", "dgst", "-binary", "-sha256", "-hmac", sk],
        input=ak.encode(),
        capture_output=True,
        check=True,
    ).stdout
    dump = subprocess.run(["od", "-An", "-vtx1"], input=digest, capture_output=True, check=True)
    return "".join(dump.stdout.decode().split())


class SWR(TokenFlow):
    token_path = "/swr/auth/v2/registry/auth/"
    service = "dockyard"

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__({f"{REGION}@{AK}": documented_login_key(AK, SK)}, clock=clock)
