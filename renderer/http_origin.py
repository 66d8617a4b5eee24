"""The HTTP origin: source images from one web server (a bucket, a CMS, a file server).

Rules:

- Every source URL is the configured base URL plus the request's path, re-encoded
  (``decode_path`` has already refused ``..``, controls and backslashes, and ``quote``
  encodes ``?`` and ``#``), so a request can only ever name a resource under the base.
  The client's query string is never forwarded.
- Redirects are followed by hand, at most ``max_redirects`` of them, and only to the same
  scheme, host and port as the base URL; anything else is a 502 naming the problem, so an
  origin cannot bounce the renderer onto an internal address.
- Timeouts (aiohttp ``ClientTimeout``): ``connect_timeout`` to open a connection,
  ``read_timeout`` for any one read, and a whole fetch is cut off at
  ``connect_timeout + 3 * read_timeout`` so a trickling server cannot hold a request
  forever. Running out is a 504; a refused connection or a 5xx is a 502.
- 404 and 410 are a missing source (404); so are 401 and 403, which object stores answer
  for keys that do not exist when listing is not allowed. Other 4xx are 404s naming the
  origin's status. A ``Content-Length`` above ``max_bytes`` is a 413 before the body is
  read; a body that grows past it is cut off with a 413 too. Bodies are asked for with
  ``Accept-Encoding: identity``, and a compressed one is counted after decompression.
- A source's version is its ETag, else its Last-Modified: every render key
  carries it, so a changed object gets new renders. An origin that sends neither is taken
  to serve immutable objects.
- ``source`` asks with HEAD (a 405 or 501 switches this origin to a GET whose body is not
  read), and remembers the answer for ``metadata_ttl`` seconds, so cache hits do not cost
  an origin round trip each. ``fetch`` GETs the body; if the validators changed since
  ``source``, the render is refused (502) rather than cached under the old version.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import aiohttp
from yarl import URL

from renderer.errors import OriginTimeout, OriginUnavailable, SourceNotFound, SourceTooLarge
from renderer.origin import DEFAULT_MAX_SOURCE_BYTES, Source

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_METADATA_TTL",
    "DEFAULT_READ_TIMEOUT",
    "HttpOrigin",
]

DEFAULT_CONNECT_TIMEOUT = 2.0  # a healthy origin in the same region connects in milliseconds
DEFAULT_READ_TIMEOUT = 10.0  # generous for a 64 MB object over a slow link, per read
DEFAULT_MAX_REDIRECTS = 3  # CDNs and buckets use one, rarely two (http->https, a rename)
DEFAULT_METADATA_TTL = 10.0  # how stale a source's version may be; 0 asks every time
_METADATA_ENTRIES = 10_000
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MISSING = frozenset({401, 403, 404, 410})


class HttpOrigin:
    """Sources under one base URL. ``start()`` before use (it needs the running loop)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        metadata_ttl: float = DEFAULT_METADATA_TTL,
    ) -> None:
        base = URL(base_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"origin URL {base_url!r} must be http:// or https:// with a host")
        if base.query_string or base.fragment:
            raise ValueError(f"origin URL {base_url!r} must not have a query or fragment")
        self.base = base
        self._prefix = str(base).rstrip("/") + "/"
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.metadata_ttl = metadata_ttl
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + 3 * read_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._head = True
        self._known: OrderedDict[str, tuple[float, Source]] = OrderedDict()

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                auto_decompress=True,
                headers={"Accept-Encoding": "identity", "User-Agent": "pixring-renderer"},
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url_of(self, name: str) -> URL:
        return URL(self._prefix + quote(name, safe="/"), encoded=True)

    async def source(self, name: str) -> Source:
        now = time.monotonic()
        known = self._known.get(name)
        if known is not None and known[0] > now:
            return known[1]
        source = await self._probe(name)
        if self.metadata_ttl > 0:
            self._known[name] = (now + self.metadata_ttl, source)
            self._known.move_to_end(name)
            while len(self._known) > _METADATA_ENTRIES:
                self._known.popitem(last=False)
        return source

    async def fetch(self, source: Source) -> bytes:
        async with self._request("GET", source.name) as response:
            current = _version(response)
            if current != source.version:
                self._known.pop(source.name, None)
                raise OriginUnavailable(f"the source /{source.name} changed at the origin while it was fetched; retry")
            return await self._body(response, source.name)

    async def _probe(self, name: str) -> Source:
        if self._head:
            async with self._request("HEAD", name, allow_unsupported=True) as response:
                if response.status not in (405, 501):
                    return self._described(name, response)
            self._head = False  # this origin does not do HEAD: ask with GET from now on
        async with self._request("GET", name) as response:
            return self._described(name, response)  # leaving unread closes the connection

    def _described(self, name: str, response: aiohttp.ClientResponse) -> Source:
        size = response.content_length
        if size is not None and size > self.max_bytes:
            raise SourceTooLarge(f"the source is {size} bytes; the limit is {self.max_bytes} bytes")
        return Source(
            name=name,
            version=_version(response),
            size=size,
            modified=_modified(response),
            url=str(response.url),
        )

    def _request(self, method: str, name: str, *, allow_unsupported: bool = False) -> _Exchange:
        return _Exchange(self, method, name, allow_unsupported)

    async def _open(self, method: str, name: str, allow_unsupported: bool) -> aiohttp.ClientResponse:
        if self._session is None:
            raise RuntimeError("HttpOrigin.start() was not called")
        url = self.url_of(name)
        for _ in range(self.max_redirects + 1):
            try:
                response = await self._session.request(method, url, allow_redirects=False)
            except asyncio.TimeoutError:
                raise OriginTimeout(f"the origin did not answer in time for /{name}") from None
            except aiohttp.ClientError as exc:
                raise OriginUnavailable(f"the origin cannot be reached for /{name}: {type(exc).__name__}") from None
            status = response.status
            if status in _REDIRECTS and "Location" in response.headers:
                response.release()
                target = url.join(URL(response.headers["Location"]))
                if (target.scheme, target.host, target.port) != (self.base.scheme, self.base.host, self.base.port):
                    raise OriginUnavailable(
                        f"the origin redirected /{name} to another host ({target.scheme}://{target.host}:{target.port}); "
                        "only the configured origin is fetched from"
                    )
                url = target
                continue
            if 200 <= status < 300:
                return response
            response.release()
            if allow_unsupported and status in (405, 501):
                return response
            if status in _MISSING:
                raise SourceNotFound(f"no source image at /{name} (the origin answered {status})")
            if 400 <= status < 500:
                raise SourceNotFound(f"no source image at /{name} (the origin answered {status})")
            raise OriginUnavailable(f"the origin failed for /{name} (status {status})")
        raise OriginUnavailable(f"the origin redirected /{name} more than {self.max_redirects} times")

    async def _body(self, response: aiohttp.ClientResponse, name: str) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_bytes:
            raise SourceTooLarge(f"the source is {declared} bytes; the limit is {self.max_bytes} bytes")
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                total += len(chunk)
                if total > self.max_bytes:
                    raise SourceTooLarge(f"the source is larger than the limit of {self.max_bytes} bytes")
                chunks.append(chunk)
        except asyncio.TimeoutError:
            raise OriginTimeout(f"the origin stalled while sending /{name}") from None
        except aiohttp.ClientError as exc:
            raise OriginUnavailable(f"the origin broke off while sending /{name}: {type(exc).__name__}") from None
        return b"".join(chunks)


class _Exchange:
    """``async with``: one request (redirects followed), its response closed on the way out."""

    def __init__(self, origin: HttpOrigin, method: str, name: str, allow_unsupported: bool) -> None:
        self._args = (method, name, allow_unsupported)
        self._origin = origin
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self._response = await self._origin._open(*self._args)
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            # A body left unread (the GET probe, an error) closes the connection instead of
            # reading megabytes just to reuse it.
            if self._response.content.at_eof():
                self._response.release()
            else:
                self._response.close()


def _version(response: aiohttp.ClientResponse) -> str:
    # Weak and strong forms of one tag name the same version here: HEAD and GET of one
    # object may differ in that alone.
    etag = response.headers.get("ETag", "").strip().removeprefix("W/")
    if etag:
        return "etag:" + etag
    modified = response.headers.get("Last-Modified", "").strip()
    return "modified:" + modified if modified else "unversioned"


def _modified(response: aiohttp.ClientResponse) -> float | None:
    text = response.headers.get("Last-Modified")
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
