"""OCI core: digests, names, media types, manifests and the error table (no I/O)."""

from portmesh.oci.digest import Digest, parse_digest
from portmesh.oci.errors import OCIError

__all__ = ["Digest", "OCIError", "parse_digest"]
