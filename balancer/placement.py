"""Render steering: a request that will make a node render goes to the less busy of its
key's first two members, and the key's later requests follow it there.

Why. A render node renders one image per render worker; a second render sent to a node
that is rendering waits for the first. Consistent hashing puts two slow first renders on
one node by chance (the tier benchmark saw a 2 s render and then a 1.7 s one queue on one
node while the others idled: a burst's p99 is made of such pairs). Bounded load
(``balance_factor``, HAProxy's ``hash-balance-factor``) would move every request off a busy
node, hits too, and each moved hit is a render on a node without the image (HAProxy paid 28%
more renders for its lower burst p99 there). A request whose image no node has cached renders
wherever it goes: only those are worth moving, and moving them costs nothing, provided the
key's next requests go where the image now is.

Rules of this module
--------------------
* The placement table remembers, per key hash, where the balancer sent the key: "seen,
  follow the ring" (rank 0) or "steered to rank k of its preference list". A rank rather
  than a member's name: the preference list is a pure function of the ring, so every
  worker reads the same member from it and the table needs no names. Direct-mapped, a
  power of two of 8-byte slots: slot ``hash & mask`` holds the hash's upper 56 bits and the
  rank plus one (0: empty). A key whose slot another key took is forgotten: it looks new
  again, and if it was steered its next request goes back to its owner (one render more).
* A key the table does not know is predicted to render. Requests for such keys in flight
  are counted per member ("renders in flight"); the count a worker reads is every worker's.
* Steering: a request for an unknown key that is not hot, whose first candidate is its
  owner, goes to its second member first when the owner has renders in flight and the
  second member has fewer; the owner stays next, for a retry. The table then says
  "rank 1", and every worker sends the key's later requests there while that member may
  take traffic (when it may not, the key takes its usual candidates). Nothing else moves:
  a known key follows the table, which is the ring for every key not steered.
* The prediction is checked against what the nodes say. From the cache-status header
  (``render_limit_header``: the reference renderer's ``X-Render-Cache``, RFC 9211's
  ``Cache-Status`` with ``fwd=miss``), each worker counts how many of its unknown-key answers
  were hits; it steers only while at most ``MAX_WRONG`` of the last ~``CHECK_WINDOW`` were,
  and not before ``CHECK_MIN`` were answered. After a restart the table is empty and every
  key looks new: the nodes answer hits, and steering waits until the table has learnt the
  fleet: a restart moves nothing until at most a quarter of the keys new to the table are
  cached somewhere, and then only those whose owner is rendering. A backend that sends no
  such header is never steered: without it pixring cannot tell what renders.
* Shared by a balancer's workers: the supervisor creates the memory (``memfd_create``) and
  every worker maps it, so a key one worker steered is followed by the others and a key
  one worker saw is not new to another. Every write is one aligned 8-byte (table) or
  4-byte (count) store, never torn. The table's stores may race (two workers, one slot:
  one value stays, as if the other key had been forgotten). Counts do not race: each
  worker has a row of its own (``rows`` rows, the worker's index modulo ``rows``), zeroed
  when it starts, and a reader sums the rows. A member's column is a hash of its id
  modulo ``columns``; two members sharing one read as busier, never idler.
* Bounded memory, fixed at start: ``8 * slots + 4 * rows * columns`` bytes for the
  balancer, whatever the traffic. A client naming new URLs only churns the table, as a
  cache's churn: the worst it does is send some keys back to their owners.

Documents relied on: memfd_create(2) and mmap(2) (a ``MAP_SHARED`` mapping of one file is
one memory for every process mapping it); Python's ``os.memfd_create`` and ``mmap``;
RFC 9211 (the Cache-Status header, read by ``balancer.headers.answer_rendered``);
HAProxy's ``hash-balance-factor``
(https://docs.haproxy.org/2.6/configuration.html#4.2-hash-balance-factor).
"""

from __future__ import annotations

import mmap
import os
from typing import Final

import xxhash

__all__ = [
    "CHECK_MIN", "CHECK_WINDOW", "COLUMNS", "MAX_WRONG", "PLACEMENT_FD_ENV", "ROWS", "Placement",
    "clear_row", "region_bytes", "shared_region",
]

PLACEMENT_FD_ENV: Final = "PIXRING_PLACEMENT_FD"
ROWS: Final = 64  # workers counted apart; a balancer runs one per CPU
COLUMNS: Final = 1024  # member columns of the render counts
CHECK_MIN: Final = 16
CHECK_WINDOW: Final = 256
MAX_WRONG: Final = 0.25
_TAG_MASK: Final = 0xFFFFFFFFFFFFFF00


def region_bytes(slots: int) -> int:
    """The shared memory a table of ``slots`` slots and the render counts take."""
    return 8 * slots + 4 * ROWS * COLUMNS


def shared_region(slots: int) -> tuple[int, mmap.mmap]:
    """A new shared region for a balancer's workers: its file descriptor (inheritable, for
    the workers) and the supervisor's own mapping of it (zeroed: a new file reads 0)."""
    fd = os.memfd_create("pixring-placement", 0)  # no MFD_CLOEXEC: the workers inherit it
    os.ftruncate(fd, region_bytes(slots))
    return fd, mmap.mmap(fd, region_bytes(slots))


def clear_row(region: mmap.mmap | bytearray, slots: int, row: int) -> None:
    """Zero a worker's render counts: its predecessor at that row may have died with
    requests in flight (the worker does it as it starts, the supervisor when one exits)."""
    start = 8 * slots + 4 * (row % ROWS) * COLUMNS
    region[start:start + 4 * COLUMNS] = bytes(4 * COLUMNS)


class Placement:
    """One worker's view of the shared table and render counts (the module's rules).

    ``region`` is the shared mapping (``shared_region``) or, for a worker on its own, any
    writable buffer of ``region_bytes(slots)`` bytes; ``row`` the worker's index.
    """

    def __init__(self, region: mmap.mmap | bytearray, slots: int, row: int) -> None:
        if slots < 1 or slots & (slots - 1):
            raise ValueError(f"placement slots must be a power of two, got {slots}")
        if len(region) < region_bytes(slots):
            raise ValueError(f"a placement region of {slots} slots needs {region_bytes(slots)} bytes, got {len(region)}")
        view = memoryview(region)
        self.table = view[:8 * slots].cast("Q")
        self.counts = view[8 * slots:region_bytes(slots)].cast("i")
        self.mask = slots - 1
        self.base = (row % ROWS) * COLUMNS  # this worker's row
        self._columns: dict[str, int] = {}
        clear_row(region, slots, row)
        self.unknown_answers = 0  # decayed counts of the check (see ``checked``)
        self.unknown_hits = 0
        self.steering = False

    # -- the table ------------------------------------------------------------
    def rank(self, key_hash: int) -> int:
        """Where the key was sent: its rank in its preference list, or -1 when unknown."""
        value: int = self.table[key_hash & self.mask]
        if value and not (value ^ key_hash) & _TAG_MASK:
            return (value & 0xFF) - 1
        return -1

    def place(self, key_hash: int, rank: int) -> None:
        self.table[key_hash & self.mask] = (key_hash & _TAG_MASK) | (rank + 1)

    # -- renders in flight ----------------------------------------------------
    def column(self, member: str) -> int:
        column = self._columns.get(member)
        if column is None:
            column = self._columns[member] = xxhash.xxh3_64_intdigest(member.encode()) % COLUMNS
        return column

    def render_started(self, member: str) -> None:
        self.counts[self.base + self.column(member)] += 1

    def render_finished(self, member: str) -> None:
        i = self.base + self.column(member)
        count: int = self.counts[i]
        if count > 0:
            self.counts[i] = count - 1

    def renders(self, member: str) -> int:
        """Renders in flight on ``member``, every worker's."""
        counts = self.counts
        total = 0
        for i in range(self.column(member), ROWS * COLUMNS, COLUMNS):
            total += counts[i]
        return total

    # -- the decision and its check -------------------------------------------
    def steers(self, owner: str, second: str) -> bool:
        """Whether an unknown key whose owner and second member these are goes to the second."""
        if not self.steering:
            return False
        busy = self.renders(owner)
        return busy > 0 and self.renders(second) < busy

    def checked(self, rendered: int) -> None:
        """An answer to a request for an unknown key: ``rendered`` as
        ``balancer.headers.answer_rendered`` says. Steering is on while the prediction
        holds (the module's rules)."""
        if rendered < 0:
            return
        self.unknown_answers += 1
        if not rendered:
            self.unknown_hits += 1
        if self.unknown_answers >= CHECK_WINDOW:  # a decayed window: the last ~CHECK_WINDOW count most
            self.unknown_answers //= 2
            self.unknown_hits //= 2
        self.steering = (self.unknown_answers >= CHECK_MIN
                         and self.unknown_hits <= MAX_WRONG * self.unknown_answers)

    def snapshot(self) -> dict[str, object]:
        """For /status: whether this worker steers, and the check that decides it."""
        return {"on": self.steering, "new_key_answers": self.unknown_answers, "of_them_hits": self.unknown_hits}
