"""The node's sync with its coordinator: policy snapshots in, events out.

The wire protocol (all under the coordinator's ``/api/v2.0``):

Join (once per node)
    A system administrator makes a join token: ``POST /nodes/join-tokens``
    ``{"duration": seconds, "description"}`` -> 201 ``{"id", "token", "expires_at"}``
    (the token is shown once, stored as its sha256, and works for one node). The node
    generates an Ed25519 key pair and calls ``POST /nodes/register``
    ``{"join_token", "name", "public_key": JWK, "url"}`` -> 201 ``{"id", "name",
    "service"}``; ``service`` is the audience of the tokens issued for this node.
    :mod:`node.sync.identity` keeps the answer and the key under ``<data>/sync``.

Node authentication
    Every later request carries ``Authorization: Bearer <JWT>``: an EdDSA token
    (:mod:`portmesh.tokens`) the node signs with its key, ``iss`` =
    ``portmesh-node:<id>``, ``sub`` = ``<id>``, ``aud`` = ``portmesh-coordinator``,
    valid 60 s. A deregistered node (``DELETE /nodes/{id}``) is refused with 401.

Policy snapshot (long poll)
    ``GET /nodes/{id}/policy?version=N&wait=S`` -> 200 with the snapshot
    (:class:`portmesh.policy.Policy` as a codec frame, zstd-compressed, content type
    ``application/vnd.portmesh.frame``, header ``X-Portmesh-Policy-Version``) as soon as
    the coordinator's policy version is above N, else 304 after S seconds (at most 60).
    The heartbeat rides on the same request: ``cache_bytes``, ``cache_hits``,
    ``cache_misses``, ``node_version`` query parameters. The node swaps a new snapshot
    into its :class:`node.auth.holder.PolicyHolder` (which stores it in LMDB first) and
    keeps the last one while the coordinator is unreachable, retrying with backoff.

Events
    ``POST /nodes/{id}/events`` with a codec frame (or a JSON array) of events (shape in
    :mod:`node.sync.events`) -> 2xx once the coordinator stored them; the coordinator
    ignores a ``seq`` it has seen from this node, so redelivery is harmless. The node
    keeps events in its LMDB outbox (pushes and deletes in the same transaction as the
    change) and drops them only after a 2xx: at least once, in order, across restarts
    and outages.

Modules: ``identity`` (join, key), ``client`` (the HTTP calls), ``events`` (shape,
codec, recorder), ``actor`` (who made a request), ``loops`` (poll, ship, flush),
``upstreams`` (proxy upstreams from the snapshot), ``service`` (wiring for ``node/app.py``,
one syncing process per node).
"""
