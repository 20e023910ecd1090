"""The HTML review report: look over a prediction run's masks in a browser, flag the bad ones and decide.

``cellseg review PRED_DIR`` collects each image's mask, image, probability map and ground truth (``collect``),
flags what looks wrong against the rest of the run (``flags``), renders the overlay PNGs (``layers``), adds a
training run's curves and validation overlays (``training_run``), and writes one self-contained ``index.html``
(``page``). Decisions made in the browser come back as ``review.csv`` (``decisions``), which ``cellseg review
--decisions`` and ``cellseg fit --data.exclude`` read.
"""
