"""SHA-256 of the shipped ``model.bin``; rewritten by ``training/injection/train.py``."""

MODEL_SHA256 = "eb605feff8157a46e4e4d703fc648c6f65af563d6a96bc9304c54fa2246c7a25"
