"""SHA-256 of the shipped ``model.bin``; rewritten by ``training/injection/train.py``."""

MODEL_SHA256 = "5e56785445dcf963c431938f0796b31949f93b53bea48b9cf43395af21d67369"
