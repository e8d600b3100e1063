"""SHA-256 of the shipped ``model.bin``; rewritten by ``training/injection/train.py``."""

MODEL_SHA256 = "fadbf4964468c691fdd70acc265b86f0d998397108dda3454a316801a63975d9"
