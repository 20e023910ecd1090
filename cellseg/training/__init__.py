"""Training: the LightningModule, its loss, metrics and learning-rate schedule."""
