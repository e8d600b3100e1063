"""Governance: who is asking (virtual keys, roles, teams) and what they may do.

``keys``: key tokens, their HMAC digests, principals and the in-memory key table the
request path reads; ``roles``: which role may do what; ``keysync``: keeps a worker's table
current with the store.
"""
