"""The errors that reading images and finding datasets raise, so callers catch one type per job.

Every message is one line that names the file or folder, says what is wrong and what to do about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LIBRARY_MESSAGE_CHARS = 200


class ImageReadError(ValueError):
    """An image or mask file that cannot be read, or whose pixels cellseg cannot use.

    The message names the file, the problem and what to do, e.g.
    ``"/x/a.tif: contains NaN or infinite pixels; fix or remove the file"``.
    """


class DatasetError(ValueError):
    """A dataset folder that does not exist or holds no image/mask pairs; the message names the folder."""


@contextmanager
def library_errors_as_read_error(path: Path, file_format: str) -> Iterator[None]:
    """Turn whatever a reading library raises inside the block into an ``ImageReadError`` about ``path``.

    Libraries fail on corrupt files with anything from ``ValueError`` and ``OSError`` to ``struct.error``,
    ``KeyError`` or ``zlib.error``; callers should have to catch only one type. ``ImageReadError`` passes through.
    """
    try:
        yield
    except ImageReadError:
        raise
    except Exception as error:
        detail = re.sub(r"\s+", " ", str(error)).strip()[:_LIBRARY_MESSAGE_CHARS]
        raise ImageReadError(
            f"{path}: cannot be read as {file_format} ({type(error).__name__}: {detail}); "
            f"check that it is a complete {file_format} file, e.g. by opening it in Fiji"
        ) from error
