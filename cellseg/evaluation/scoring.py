"""Score paired mask files: read both, check them, match the instances; in worker processes for large sets."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeAlias

from cellseg.evaluation.matching import IOU_THRESHOLDS, InstanceScores, LabelImage, as_instances, match_instances
from cellseg.evaluation.pairing import MaskPair
from cellseg.io.errors import ImageReadError
from cellseg.io.readers import read_mask

# Below this many pairs, starting worker processes costs more than it saves.
_PARALLEL_FROM = 32


class EvaluationError(ValueError):
    """A pair of masks that cannot be compared; the one-line message names the files and what to do."""


@dataclass(frozen=True)
class ImageEvaluation:
    """The scores of one image.

    Attributes:
        name: the image's name.
        scores: instance matching at each threshold, merges, splits and foreground overlap.
        truth_was_binary: the true mask held one foreground value in several pieces, so its connected components
            became its objects (a mask with one object in one piece is not counted: labelling changes nothing).
        prediction_was_binary: the same for the predicted mask.
        seconds: time to read and score the pair.
    """

    name: str
    scores: InstanceScores
    truth_was_binary: bool
    prediction_was_binary: bool
    seconds: float


@dataclass(frozen=True)
class EvaluationFailure:
    """A pair that could not be scored, and why (one line)."""

    name: str
    error: str


def evaluate_pair(pair: MaskPair, thresholds: tuple[float, ...] = IOU_THRESHOLDS) -> ImageEvaluation:
    """Read a predicted and a true mask and score the prediction.

    Binary masks (one foreground value) are labelled by connected components first; see
    :func:`cellseg.evaluation.matching.as_instances`.

    Args:
        pair: the two mask files, each ``(H, W)`` or ``(D, H, W)`` labels.
        thresholds: the IoU thresholds to match at.

    Returns:
        The image's scores.

    Raises:
        EvaluationError: a file cannot be read or is not a mask, or the two shapes differ.
    """
    started = time.perf_counter()
    try:
        truth, truth_was_binary = _instances(read_mask(pair.truth))
        predicted, prediction_was_binary = _instances(read_mask(pair.predicted))
    except ImageReadError as error:
        raise EvaluationError(str(error)) from error
    if truth.shape != predicted.shape:
        raise EvaluationError(
            f"{pair.predicted}: shape {predicted.shape} differs from its ground truth {pair.truth} {truth.shape}; "
            "compare a prediction of the very image the ground truth was drawn on (not a crop or a resized copy)"
        )
    scores = match_instances(truth, predicted, thresholds)
    return ImageEvaluation(
        name=pair.name,
        scores=scores,
        truth_was_binary=truth_was_binary,
        prediction_was_binary=prediction_was_binary,
        seconds=time.perf_counter() - started,
    )


def _instances(mask: LabelImage) -> tuple[LabelImage, bool]:
    """Instance labels of a mask, and whether labelling by connected components made more than one object."""
    labels, was_binary = as_instances(mask)
    return labels, was_binary and int(labels.max(initial=0)) > 1


Result: TypeAlias = "ImageEvaluation | EvaluationFailure"


def _evaluate_or_fail(pair: MaskPair, thresholds: tuple[float, ...]) -> Result:
    try:
        return evaluate_pair(pair, thresholds)
    except EvaluationError as error:
        return EvaluationFailure(pair.name, str(error))


def evaluate_pairs(
    pairs: list[MaskPair],
    thresholds: tuple[float, ...] = IOU_THRESHOLDS,
    workers: int | None = None,
    progress: Callable[[Iterable[Result], int], Iterator[Result]] | None = None,
) -> tuple[list[ImageEvaluation], list[EvaluationFailure]]:
    """Score every pair; a pair that fails is reported, the others go on.

    Args:
        pairs: the mask pairs.
        thresholds: the IoU thresholds to match at.
        workers: processes to score in; ``None`` takes the CPU count from 32 pairs on (1 below), ``1`` scores here.
        progress: wraps the stream of results (e.g. a progress bar), given it and the number of pairs.

    Returns:
        ``(evaluations, failures)``, each in the order of ``pairs``.
    """
    if workers is None:
        workers = (os.cpu_count() or 1) if len(pairs) >= _PARALLEL_FROM else 1
    score = partial(_evaluate_or_fail, thresholds=thresholds)
    evaluations: list[ImageEvaluation] = []
    failures: list[EvaluationFailure] = []

    def collect(results: Iterable[Result]) -> None:
        for result in progress(results, len(pairs)) if progress is not None else results:
            if isinstance(result, EvaluationFailure):
                failures.append(result)
            else:
                evaluations.append(result)

    if workers <= 1:
        collect(map(score, pairs))
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(pairs))) as pool:
            collect(pool.map(score, pairs, chunksize=max(1, len(pairs) // (8 * workers))))
    return evaluations, failures
