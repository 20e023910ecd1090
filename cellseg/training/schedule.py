"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, final_factor: float = 0.0) -> float:
    """The factor the base learning rate is multiplied by at ``step`` (0-based).

    Rises linearly from ``1 / warmup_steps`` to 1 over ``warmup_steps`` steps, then follows a half cosine down to
    ``final_factor`` at ``total_steps``; stays there after.

    Example:
        >>> [round(warmup_cosine_factor(s, total_steps=10, warmup_steps=2), 3) for s in (0, 1, 2, 6, 10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))
