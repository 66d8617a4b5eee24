"""A ring survives pickling unchanged, and unpickling builds nothing.

The worker's ring builder builds large rings in a child process and receives them
pickled (``balancer.ringbuild``); a restored ring must route exactly as the built one.
"""

from __future__ import annotations

import copy
import pickle

import pytest

import balancer.ring as ring_module
from balancer.ring import build_ring, key_hash

KEYS = [key_hash(f"/photos/{i}.jpg?w={i % 9 * 100}&fm=webp") for i in range(10_000)]
# 1,000 members have a few positions held by two members; mixed weights and a weight-0 one.
THOUSAND = {f"render-{i:04d}": 1.0 for i in range(1000)}
MIXED = {f"render-{i:02d}": 0.25 + (i % 5) * 0.5 for i in range(20)} | {"rendu-é": 2.0, "gone": 0.0}


def round_trip(ring):
    return pickle.loads(pickle.dumps(ring, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("weights", [THOUSAND, MIXED], ids=["1000-members", "mixed-weights"])
def test_a_restored_ring_routes_10000_keys_as_the_built_one(weights):
    built = build_ring(weights)
    restored = round_trip(built)
    assert restored is not built
    assert restored.version == built.version
    assert restored.members == built.members and dict(restored.weights) == dict(built.weights)
    assert restored.size == built.size and restored.probes == built.probes
    assert [restored.owner(h) for h in KEYS] == [built.owner(h) for h in KEYS]
    assert [restored.preference(h, 3) for h in KEYS] == [built.preference(h, 3) for h in KEYS]
    assert [restored.preference(h, 25) for h in KEYS[:300]] == [built.preference(h, 25) for h in KEYS[:300]]


def test_the_thousand_member_ring_has_shared_positions_to_carry():
    # The shared-position table decides preference order where two members meet; the
    # test above only proves it survives if there is one to carry.
    assert build_ring(THOUSAND)._shared


def test_a_restored_ring_computes_the_same_shares_and_pickles_again():
    built = build_ring(MIXED)
    restored = round_trip(round_trip(built))
    assert dict(restored.shares()) == dict(built.shares())
    assert restored.max_share == built.max_share
    assert [restored.owner(h) for h in KEYS[:2000]] == [built.owner(h) for h in KEYS[:2000]]


def test_the_empty_ring_survives_pickling():
    restored = round_trip(build_ring({}))
    assert len(restored) == 0 and restored.owner(KEYS[0]) is None and restored.preference(KEYS[0], 3) == ()
    assert restored.version == build_ring({}).version


def test_unpickling_hashes_and_sorts_nothing(monkeypatch):
    data = pickle.dumps(build_ring(MIXED))

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling a ring must not rebuild it")

    monkeypatch.setattr(ring_module, "point_hashes", forbidden)
    monkeypatch.setattr(ring_module, "_shared_positions", forbidden)
    monkeypatch.setattr(ring_module, "bisect_left", forbidden)
    monkeypatch.setattr(ring_module, "_fingerprint", forbidden)
    restored = pickle.loads(data)
    assert restored.owner(KEYS[0]) in MIXED


def test_a_restored_ring_is_as_read_only_as_a_built_one():
    restored = round_trip(build_ring(MIXED))
    with pytest.raises(TypeError):
        restored.weights["render-00"] = 5.0  # type: ignore[index]
    assert copy.deepcopy(restored).version == restored.version
