"""Progress bars that honour ``TQDM_DISABLE`` (set by ``--quiet``) as well as an explicit off switch."""

from __future__ import annotations

from typing import Any


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A ``tqdm`` bar; when ``enabled`` the ``disable`` argument is left to tqdm's environment defaults."""
    from tqdm.auto import tqdm

    if not enabled:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
