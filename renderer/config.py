"""The renderer's table of fields: ``pixring renderer``'s flags, TOML file and variables.

The same machinery and layering as the balancer's (``pixring.config``): a TOML file
(``--config FILE`` or ``PIXRING_RENDERER_CONFIG``), then ``PIXRING_RENDERER_*``
environment variables, then flags; ``cache_bytes`` in the file is
``PIXRING_RENDERER_CACHE_BYTES`` and ``--cache-bytes``. ``--help``, ``--print-config``
and the reference (``python -m renderer.config``) are read from this table.

A SIGHUP reads the file again (with the environment and flags of the start) and applies
the fields marked ``reload``: the caches' sizes and the per-request limits, which a
running renderer can change without dropping anything (``renderer.reload``). Every other
field (the listener, the origin, the worker pool, the disk cache's directory) is read at
start only: a SIGHUP that changes one says so in the log, and a restart applies it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pixring.config import (
    Address,
    Field,
    Table,
    boolean,
    human_size,
    non_negative_float,
    non_negative_int,
    parse_address,
    positive,
    size,
)
from renderer.settings import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_CACHE_CONTROL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DISK_CACHE_BYTES,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUT_PIXELS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_SOURCE_BYTES,
    DEFAULT_MAX_SOURCE_PIXELS,
    DEFAULT_METADATA_TTL,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RENDER_TIMEOUT,
    RendererSettings,
)
from renderer.workers import DEFAULT_QUEUE_PER_WORKER

__all__ = ["COMMAND_FIELDS", "DEFAULT_ORIGIN", "FIELDS", "TABLE", "settings_from"]

DEFAULT_LISTEN = Address("127.0.0.1", 9000)
# Metrics are the renderer's internals: on a listener of their own, loopback by default as
# the balancer's admin listener, never on the image port a balancer forwards strangers to.
DEFAULT_ADMIN = Address("127.0.0.1", 9100)
DEFAULT_ORIGIN = Path("var/samples")
DEFAULT_SHUTDOWN_TIMEOUT = 30.0


def parse_origin(value: Any) -> Path | str | None:
    """A directory, or an ``http(s)://`` base URL with a host and no query; empty: the default."""
    if value is None or isinstance(value, Path):
        return value
    text = str(value).strip()
    if not text:
        return None
    if text.startswith(("http://", "https://")):
        from yarl import URL

        url = URL(text)
        if not url.host or url.query_string or url.fragment:
            raise ValueError(f"{text!r}: an origin URL needs a host and no query or fragment")
        return text
    if "://" in text:
        raise ValueError(f"{text!r}: only http:// and https:// origins are supported")
    return Path(text)


def _directory(value: Any) -> Path | None:
    text = str(value).strip() if value is not None else ""
    return Path(text) if text else None


def _optional(parse: Any) -> Any:
    """``parse``, with an empty value (TOML can say ``""``) meaning the field's default of None."""
    def parse_optional(value: Any) -> Any:
        return None if value is None or str(value).strip() == "" else parse(value)

    return parse_optional


def _header_line(value: Any) -> str:
    text = str(value)
    if any(c in text for c in "\r\n"):
        raise ValueError("must be a single header line")
    return text


FIELDS: tuple[Field, ...] = (
    Field("listen", parse_address, DEFAULT_LISTEN,
          "address to serve HTTP on; port 0 picks a free port, printed on the ready line", "HOST:PORT"),
    Field("admin", parse_address, DEFAULT_ADMIN,
          "address of the admin listener (/metrics, /healthz); keep it private. Port 0 picks a free port, "
          "named in the start log line", "HOST:PORT"),
    Field("origin", parse_origin, None,
          "where source images come from: a directory (a request path names a file below it) or an "
          "http(s):// base URL (the request path is appended; only that host is fetched from)", "DIR|URL",
          shown_default=f"{DEFAULT_ORIGIN}/, with the sample images generated there on first use"),
    Field("samples", boolean, False,
          "generate the sample images into the origin before serving (skips files already generated; "
          "implied when no origin is given)", switch=True),
    Field("origin_connect_timeout", positive(float), DEFAULT_CONNECT_TIMEOUT,
          "HTTP origin: time to open a connection; longer is a 504", "SECONDS"),
    Field("origin_read_timeout", positive(float), DEFAULT_READ_TIMEOUT,
          "HTTP origin: longest wait for any one read; a whole fetch is cut off at connect + 3 x read", "SECONDS"),
    Field("origin_redirects", non_negative_int, DEFAULT_MAX_REDIRECTS,
          "HTTP origin: redirects followed, same host only", "N"),
    Field("origin_ttl", non_negative_float, DEFAULT_METADATA_TTL,
          "HTTP origin: how long a source's ETag/Last-Modified is trusted before it is asked again; "
          "0 asks on every request", "SECONDS"),
    Field("render_workers", _optional(positive(int)), None,
          "render worker processes, the CPU-bound part", "N",
          shown_default="one per CPU this process can use, counting a cgroup CPU quota"),
    Field("render_queue", _optional(non_negative_int), None,
          "renders allowed to wait for a busy worker; beyond that a request gets 503 + Retry-After", "N",
          reload=True, shown_default=f"{DEFAULT_QUEUE_PER_WORKER} per worker"),
    Field("cache_bytes", size, DEFAULT_CACHE_BYTES,
          "memory for the in-process cache of rendered images, e.g. 512M or 2G; 0 disables it", "SIZE",
          reload=True, shown_default=human_size(DEFAULT_CACHE_BYTES)),
    Field("disk_cache", _directory, None,
          "also keep rendered images in this directory (kept across restarts, shareable by several renderers)",
          "DIR", shown_default="memory only"),
    Field("disk_cache_bytes", size, DEFAULT_DISK_CACHE_BYTES, "disk space for the disk cache, e.g. 10G", "SIZE",
          reload=True, shown_default=human_size(DEFAULT_DISK_CACHE_BYTES)),
    Field("cache_control", _header_line, DEFAULT_CACHE_CONTROL, "Cache-Control header of every rendered image",
          "VALUE", reload=True),
    Field("max_source_pixels", positive(int), DEFAULT_MAX_SOURCE_PIXELS,
          "largest source image, in pixels of 8-bit RGB, read from its header before decoding (an RGBA or "
          "16-bit source counts its extra bytes per pixel); larger is 413", "N",
          shown_default=f"{DEFAULT_MAX_SOURCE_PIXELS}, i.e. {DEFAULT_MAX_SOURCE_PIXELS // 1_000_000} MP"),
    Field("max_source_bytes", size, DEFAULT_MAX_SOURCE_BYTES, "largest source file, e.g. 64M; larger is 413",
          "SIZE", reload=True, shown_default=human_size(DEFAULT_MAX_SOURCE_BYTES)),
    Field("max_output_pixels", positive(int), DEFAULT_MAX_OUTPUT_PIXELS,
          "the render budget: largest output image, in pixels, checked before decoding; a request for more "
          "is a 400 naming this limit", "N", reload=True,
          shown_default=f"{DEFAULT_MAX_OUTPUT_PIXELS}, 4096 x 4096"),
    Field("max_output_bytes", size, DEFAULT_MAX_OUTPUT_BYTES,
          "largest encoded image, checked as the encoder writes; larger is a 400 naming this limit", "SIZE",
          reload=True, shown_default=human_size(DEFAULT_MAX_OUTPUT_BYTES)),
    Field("render_timeout", positive(float), DEFAULT_RENDER_TIMEOUT,
          "longest time one render may take from its admission to the worker pool (queueing included); "
          "longer is stopped and answered 503 + Retry-After (overload, as a full queue). Keep it below the "
          "balancer's try_timeout", "SECONDS",
          reload=True),
    Field("head_timeout", positive(float), DEFAULT_HEAD_TIMEOUT,
          "time a client has to send a whole request head, from connecting or from the first byte of the "
          "next request; slower connections are closed", "SECONDS"),
    Field("shutdown_timeout", positive(float), DEFAULT_SHUTDOWN_TIMEOUT,
          "on SIGTERM/SIGINT, how long in-flight requests may take to finish", "SECONDS"),
    Field("access_log", boolean, True,
          "write a JSON access-log line per request to stderr (--no-access-log: none)", switch=True),
    Field("log_probes", boolean, False,
          "access-log the health probes (GET /healthz) too; off, they would be most of an idle node's log", switch=True),
)

TABLE = Table(FIELDS, "PIXRING_RENDERER_")

# Fields of the command rather than of the app: where it listens, what it does before
# serving and how long it waits when told to stop.
COMMAND_FIELDS = ("listen", "admin", "samples", "shutdown_timeout")


def settings_from(values: Mapping[str, Any]) -> RendererSettings:
    """The app's settings from a table's values (fields of other tables are ignored);
    ValueError names the field that cannot be used."""
    names = [field.name for field in FIELDS if field.name not in COMMAND_FIELDS]
    kwargs = {name: values[name] for name in names}
    kwargs["origin"] = kwargs["origin"] if kwargs["origin"] is not None else DEFAULT_ORIGIN
    return RendererSettings(**kwargs)


if __name__ == "__main__":
    print(TABLE.reference(reload_column=True))
