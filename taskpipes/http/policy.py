"""What the pages may load and run, and how they show text that came from outside.

The pages run no script and load nothing: their one `<style>` element is the site's CSS,
allowed by its hash. A hash rather than a nonce because a page is cached and revalidated
by ETag (a 304 carries no new body, so a per-response nonce could not match it), and no
'unsafe-inline': the pages have no style attribute, and inline SVG needs no style source.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from markupsafe import Markup

# Bidirectional controls (embeddings, overrides, isolates, marks): inside a name, an error
# or a repository's description they would reorder the text around them ("evil\u202egpj.exe").
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def stylesheet(package: str, path: str = "static/site.css") -> Markup:
    """A package's stylesheet, to inline; Markup because CSS inside <style> is not HTML."""
    return Markup(resources.files(package).joinpath(path).read_text(encoding="utf-8"))


# Pure memoisation (here and in page_policy): the stylesheet ships with the package and
# depends on no configuration.
@cache
def site_css() -> Markup:
    """The kit's stylesheet: the frame, tables, banners and the pipelines' pages. A host's
    pages that extend the kit's base.html inline it followed by their own."""
    return stylesheet(__package__ or "taskpipes.http")


@cache
def page_policy(css: str) -> str:
    """The Content-Security-Policy of an HTML page whose one `<style>` element is `css`."""
    digest = hashlib.sha256(css.encode("utf-8")).digest()
    style = f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src {style}",
            "img-src data:",  # the empty favicon (<link rel="icon" href="data:,">)
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def show_controls(value: object) -> object:
    """Jinja's finalize: a bidi control in text becomes its visible code point, U+202E."""
    # Every control is outside ASCII, and isascii is the cheap test (most text passes it).
    if isinstance(value, str) and not value.isascii() and not isinstance(value, Markup):
        return BIDI_CONTROLS.sub(lambda found: f"[U+{ord(found[0]):04X}]", value)
    return value
