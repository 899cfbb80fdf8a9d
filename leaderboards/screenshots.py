"""Screenshots of boards as GitHub shows them: each markdown file rendered to HTML (CommonMark with tables, as
GitHub's renderer), tags outside GitHub's sanitizer allowlist stripped as GitHub strips them, laid out at the
width and with the table rules of GitHub's markdown pages, and photographed by a headless Chromium.

    python leaderboards/screenshots.py leaderboards/*.md --out leaderboards/screenshots [--chromium PATH]

Run it when a board or the board code changes and look at the pictures: headers on one or two lines, no model
name broken inside a word, bold and underlined marks visible. Without Chromium (Debian: ``apt-get install
chromium``) it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: the parts of GitHub's markdown CSS that decide how a table wraps (github-markdown-css, .markdown-body)
GITHUB_CSS = """
body { margin: 0; background: #fff; }
.markdown-body { box-sizing: border-box; width: 980px; padding: 45px; font-family: -apple-system, "Segoe UI",
  "Noto Sans", Helvetica, Arial, sans-serif; font-size: 16px; line-height: 1.5; word-wrap: break-word;
  color: #1f2328; }
.markdown-body table { display: block; width: max-content; max-width: 100%; overflow: auto;
  border-spacing: 0; border-collapse: collapse; margin-bottom: 16px; }
.markdown-body td, .markdown-body th { padding: 6px 13px; border: 1px solid #d1d9e0; }
.markdown-body th { font-weight: 600; }
.markdown-body tr:nth-child(2n) { background-color: #f6f8fa; }
.markdown-body ins { text-decoration: underline; }
.markdown-body sup { font-size: 75%; }
"""
#: tags GitHub keeps (its sanitizer's allowlist, the ones a board can produce); the rest are stripped
KEPT = {"h1", "h2", "h3", "h4", "p", "strong", "em", "ins", "del", "sup", "sub", "table", "thead", "tbody", "tr",
        "th", "td", "ul", "ol", "li", "code", "a", "img", "br"}  # fmt: skip


def github_html(markdown: str) -> str:
    """The page GitHub would show for ``markdown`` (its layout rules, its tag allowlist)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    body = re.sub(r"</?([a-zA-Z0-9]+)[^>]*>", lambda m: m.group(0) if m.group(1).lower() in KEPT else "", body)
    return f'<html><head><meta charset="utf-8"><style>{GITHUB_CSS}</style></head><body><article class="markdown-body">{body}</article></body></html>'  # noqa: E501


def screenshot(chromium: str, page: Path, out: Path, height: int) -> None:
    """A PNG of ``page`` at GitHub's page width."""
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", "--hide-scrollbars",
         f"--window-size=1000,{height}", f"--screenshot={out}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def main() -> int:
    """Render and photograph every board given."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("boards", nargs="+", type=Path, help="board markdown files")
    parser.add_argument("--out", type=Path, default=Path("leaderboards/screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    if not args.chromium:
        print("SKIPPED: no Chromium (apt-get install chromium, or pass --chromium PATH)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="board-pages-"))
    for board in args.boards:
        text = board.read_text(encoding="utf-8")
        page = work / f"{board.stem}.html"
        page.write_text(github_html(text), encoding="utf-8")
        height = 220 + 34 * text.count("\n| ") + 24 * text.count("\n- ") + 60 * text.count("**\n")
        screenshot(args.chromium, page, args.out / f"{board.stem}.png", height)
        print(f"{board} -> {args.out / (board.stem + '.png')}  ({html.escape(board.stem)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
