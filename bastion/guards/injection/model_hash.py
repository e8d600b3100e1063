"""SHA-256 of the shipped ``model.bin``; rewritten by ``training/injection/train.py``."""

MODEL_SHA256 = "18f69d5cebfaf32e1554bd7efc8be91bf798864f76aed0f0da2673bae931206b"
