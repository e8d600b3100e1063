"""Guards: scanners over request and response text, and the policy engine that runs them.

``base`` is the contract every scanner (built-in or a plugin's) implements; built-in
scanners register through the same ``register_scanners`` hook a user's plugin would.
"""
