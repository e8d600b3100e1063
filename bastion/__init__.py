"""Bastion: an LLMOps gateway that deploys, watches and guards language models."""

__version__ = "0.1.0"
