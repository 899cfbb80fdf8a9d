"""Names that become paths or board cells: checked where they enter, escaped where they are printed.

A registered name (model, task, metric, trainer, judge, alias) becomes a results folder, a plot's file name and
a board column, so it must be a plain word: letters, digits and ``. _ + -``, starting with a letter or digit
(:data:`NAME_PATTERN`); ``..``, slashes and anything else are refused when the plugin or the YAML spec registers
it. Names that come from outside (a served model's name, a generator folder, a hand-edited results file) are
free text: folders are built from them only through :func:`harness.results.model_dir_name`, which keeps the
plain characters, and a board prints them through :func:`board_text`, which escapes HTML and table syntax.
"""

from __future__ import annotations

import html
import re

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def is_plain_name(name: object) -> bool:
    """Whether ``name`` is a plain word that may become a folder or file name (and is not ``.``-only)."""
    return isinstance(name, str) and bool(NAME_PATTERN.fullmatch(name)) and ".." not in name


def check_name(kind: str, name: object, where: str = "") -> str:
    """``name`` itself when it is plain, else ``ValueError`` saying what is allowed."""
    if not is_plain_name(name):
        place = f" ({where})" if where else ""
        raise ValueError(
            f"{kind} name {name!r}{place} is not allowed: use letters, digits and . _ + - (starting with a letter or "
            "digit, no '..'), since it becomes a results folder and a board column"
        )
    return str(name)


def board_text(text: object) -> str:
    """``text`` safe in a GitHub-flavoured markdown table cell: HTML escaped (no live tags), ``|`` escaped (no extra
    cells), line breaks and backticks neutralised."""
    escaped = html.escape(" ".join(str(text).split()), quote=False)
    return escaped.replace("|", "&#124;").replace("`", "&#96;")
