"""Inference: from network outputs to instance masks."""
