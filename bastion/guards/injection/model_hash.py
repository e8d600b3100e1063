"""SHA-256 of the shipped ``model.bin``; rewritten by ``training/injection/train.py``."""

MODEL_SHA256 = "4c653b1a47d8918c7b9ff1e0638a0e36a51eb95e975d2234c262d181350c44d3"
