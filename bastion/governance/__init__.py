"""Governance: who is asking (virtual keys, roles, teams) and what they may do.

``keys``: key tokens, their HMAC digests, principals and the in-memory key table the
request path reads; ``roles``: which role may do what; ``keysync``: keeps a worker's table
current with the store; ``oidc``: single sign-on, bearer JWTs → principals, over the
issuer's keys that ``jwks`` fetches and refreshes; ``audit``: the hash-chained, signed
log of admin actions, fed by ``authfail`` (failed key uses, aggregated); ``subjects``:
data subjects (ids in the audit log, erasers, the ingest's tombstones).
"""
