"""Data: synthetic nuclei, training targets from instance labels, transforms and the datamodule."""
