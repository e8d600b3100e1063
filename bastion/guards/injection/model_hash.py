"""SHA-256 of the shipped ``model.bin``; rewritten by ``training/injection/train.py``."""

MODEL_SHA256 = "0ce375b8453ac5910c743cf4211630478985296d62174ce6dddf2910b3cf5be1"
