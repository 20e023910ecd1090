"""Evaluation of segmentations.

- ``counts``: scores as pure functions of counts (precision, recall, F1, DSB score, PQ, Dice, IoU);
- ``matching``: instance matching of a predicted label image to the true one (``match_instances``);
- ``pairing``, ``scoring``, ``summary``, ``plots``, ``cli``: the ``cellseg evaluate`` command over folders.

Nothing is imported here, so that ``cellseg --help`` (which builds the ``evaluate`` parser) does not load SciPy:
import from the modules, e.g. ``from cellseg.evaluation.matching import match_instances``.
"""
