"""cellseg: segment cells and nuclei in microscopy images with a residual + attention U-Net."""

__version__ = "0.1.0"
