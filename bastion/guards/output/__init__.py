"""Output checks: scanners for the model's answer (toxicity, banned topics and substrings,
system-prompt leakage through canary tokens, JSON-schema validation of structured answers).
They also run on input when a policy asks; none of them needs a model download."""
