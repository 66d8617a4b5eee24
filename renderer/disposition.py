"""``dl``: the ``Content-Disposition`` that makes a browser save the image under a name.

https://docs.imgix.com/apis/rendering/format/download. Rules:

- ``attachment; filename="<ascii>"``, plus ``filename*=UTF-8''<percent-encoded>`` (RFC 6266
  section 4.3, RFC 8187 (which replaced RFC 5987)) when the name is not plain printable
  ASCII; the quoted form is then the fallback for old clients, every character it cannot
  hold replaced by ``_``.
- The value is text the client chose, so it is fenced: control characters (CR and LF
  above all: they would end the header and start another) are removed, as are lone
  surrogates; in the quoted form ``"`` and ``\\`` become ``_``, and ``/`` and ``\\`` nowhere
  name a directory (``_``). At most ``MAX_NAME`` characters are kept, so the header stays
  far below any head-size limit (a filesystem takes 255 bytes anyway).
- A name that is empty once fenced is ``download``.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["MAX_NAME", "content_disposition"]

MAX_NAME = 200
_FALLBACK = "download"
# RFC 8187 attr-char: what filename* may carry unencoded.
_ATTR_SAFE = "!#$&+-.^_`|~"


def content_disposition(filename: str) -> str:
    name = "".join(ch for ch in filename if _kept(ch))[:MAX_NAME].strip()
    name = name.replace("/", "_").replace("\\", "_")
    if not name:
        name = _FALLBACK
    ascii_name = "".join(ch if " " <= ch <= "~" and ch != '"' else "_" for ch in name)
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        header += "; filename*=UTF-8''" + quote(name.encode("utf-8"), safe=_ATTR_SAFE)
    return header


def _kept(ch: str) -> bool:
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return False
    # Cc and the Unicode line/paragraph separators: nothing in a header may break a line.
    return ch.isprintable() or ch == " "
