"""The fuzz targets of ``make fuzz`` (``tests/fuzzing.py``), run briefly by hypothesis.

``make fuzz`` runs them coverage-guided for as long as it is given; here each gets its seeds
and a few hundred generated inputs, so an invariant that breaks on common input fails the
suite, and every crash the fuzzer ever finds is added to ``FOUND`` as a regression case.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import SEEDS, front_once, normalize_once

# Inputs a fuzzer run found breaking an invariant, kept once fixed: (target, bytes).
FOUND: list[tuple[str, bytes]] = []

_PIECES = st.sampled_from([
    b"GET ", b"HEAD ", b"POST ", b"/", b"/photos/a.jpg", b"?", b"&", b"w=400", b"q=1000", b"%", b"%41", b"%zz", b"%00",
    b"\x00", b"\xff", b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", b"Host: a\r\n", b"Host: b\r\n", b"X-Real-IP: 1\r\n",
    b"Forwarded: for=x\r\n", b"X-Pixring-Node: e\r\n", b"X-Forwarded-Port: 1\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 3\r\n", b"Connection: close\r\n", b" folded\r\n", b"\r\n", b"\n", b"0\r\n\r\n", b"abc",
])
REQUESTS = st.one_of(st.binary(max_size=300), st.lists(_PIECES, max_size=24).map(b"".join))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_seeds_hold(seed):
    front_once(seed)
    normalize_once(seed.split(b" ")[1])


def test_what_the_fuzzer_found_stays_fixed():
    for target, data in FOUND:
        {"front": front_once, "normalize": normalize_once}[target](data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_any_bytes_a_client_sends_cross_the_front_as_the_rules_say(data):
    front_once(data)


@settings(max_examples=300, deadline=None)
@given(REQUESTS)
def test_any_target_normalizes_or_is_refused_cleanly(data):
    normalize_once(data)
