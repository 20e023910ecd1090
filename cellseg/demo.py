"""``cellseg demo``: the whole chain on built-in synthetic data.

Until the training issue lands, the demo builds the default network and segments one synthetic image with its
untrained weights, to show the install works end to end, and says what the full demo will do.
"""

from __future__ import annotations

import time

import torch

from cellseg.models import ResAttUNet

DEMO_IMAGE_SIZE = 256
PLANNED_STEPS = (
    "generate a synthetic nuclei data set (images + instance masks) under data/demo",
    "train ResAttUNet on it with Lightning and MONAI augmentation (cellseg fit, configs/demo.yaml)",
    "predict instance masks for held-out images (cellseg predict)",
    "score them against the truth (cellseg evaluate)",
    "write a browser report of the masks (cellseg review)",
)


def synthetic_blobs(size: int, seed: int) -> torch.Tensor:
    """A quick stand-in image: Gaussian blobs on a dark background, shape ``(1, 1, size, size)``, values in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    axis = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    image = torch.zeros(size, size)
    for _ in range(12):
        centre = torch.rand(2, generator=generator) * size
        radius = 6 + 10 * torch.rand(1, generator=generator)
        image += torch.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * radius**2))
    return (image.clamp(max=1.0) + 0.05 * torch.rand(size, size, generator=generator)).view(1, 1, size, size)


def run_demo(seed: int = 0) -> None:
    """Print the demo's plan, then run the default network on one synthetic image and report what came out."""
    print("cellseg demo (placeholder until training lands). The full demo will:")
    for number, step in enumerate(PLANNED_STEPS, start=1):
        print(f"  {number}. {step}")
    print("Today it checks the install: the default ResAttUNet segments one synthetic image (untrained weights).")

    network = ResAttUNet(spatial_dims=2, in_channels=1, out_channels=2).eval()
    image = synthetic_blobs(DEMO_IMAGE_SIZE, seed)
    start = time.perf_counter()
    with torch.inference_mode():
        output = network.forward_with_aux(image)
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in network.parameters())
    print(f"  network: {parameters / 1e6:.2f} M parameters, channels {network.channels}")
    print(f"  input {tuple(image.shape)} -> logits {tuple(output.logits.shape)} in {seconds:.2f} s")
    for level, alpha in enumerate(output.attention):
        print(f"  attention gate {level}: shape {tuple(alpha.shape)}, mean {alpha.mean().item():.3f}")
