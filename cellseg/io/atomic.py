"""Write a file so that it appears whole or not at all, even when the writer fails or the process is killed."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cellseg.io.readers import split_extension


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Give a temporary path next to ``path`` to write to, and move it onto ``path`` once the block succeeds.

    The temporary file is ``.{stem}.tmp-{random}{extension}`` in the same folder: hidden, on the same file system
    (so that ``os.replace`` is atomic) and with the real extension (``.nii.gz``, ``.tif``, ...), since libraries pick
    the format or compression from it. The block must create the file. If the block raises (``KeyboardInterrupt``
    included), the temporary file is deleted and ``path`` is left as it was: a reader never sees half a file.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_output(folder / "a.nii.gz") as temporary:
    ...     _ = temporary.write_bytes(b"...")
    ...     temporary.name.startswith(".a.tmp-") and temporary.name.endswith(".nii.gz")
    True
    >>> sorted(p.name for p in folder.iterdir())
    ['a.nii.gz']

    Args:
        path: the file to write; an existing file there is replaced.

    Yields:
        The temporary path to write to.

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist; create it before writing there")
    stem, extension = split_extension(path)
    temporary = path.with_name(f".{stem}.tmp-{secrets.token_hex(4)}{extension}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
