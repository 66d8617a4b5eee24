"""The wire limits the balancer and the render nodes must agree on.

The balancer refuses what is larger (414 for a long request line, 431 for a large head)
and forwards everything else, so a node behind it must accept at least as much: the
reference renderer sizes its HTTP parser from these numbers, and the balancer's
``max_request_line`` and ``max_header_bytes`` default to them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_QUERY_PARTS", "MAX_REQUEST_HEAD", "MAX_TARGET_LENGTH"]

# nginx's default large_client_header_buffers is 8 KiB; a longer target is refused there too.
MAX_TARGET_LENGTH: Final = 8192

# The largest request head pixring accepts at its defaults (431 beyond), and so the
# largest a node must accept from it.
MAX_REQUEST_HEAD: Final = 16384

# The most '&'-separated parts a query may have (400 beyond). An imgix URL carries a dozen
# parameters, two dozen with tracking junk; each part costs the normalizer a Python step
# (about a microsecond), so 8 KiB of "w=1&" would otherwise cost two thousand of them.
MAX_QUERY_PARTS: Final = 128
