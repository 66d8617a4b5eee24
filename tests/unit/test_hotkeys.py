"""The hot-key counter: a heavy key is found, memory stays bounded, a cooled key goes back to one replica."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from balancer.hashing import key_hash
from balancer.hotkeys import Z, HotKeyError, HotKeyPolicy, HotKeys, replica_count

POLICY = HotKeyPolicy(threshold=0.02, replica_load=0.5, max_replicas=4, sample=4, half_life=512)


def _key(i: int) -> tuple[int, str]:
    name = f"/images/{i}.jpg?w=400"
    return key_hash(name), name


def _stream(rng: random.Random, n: int, hot: dict[int, float], tail: int = 50_000):
    """``n`` requests: each hot key (index -> share) with its share, the rest uniform over the tail."""
    for _ in range(n):
        x = rng.random()
        for index, share in hot.items():
            if x < share:
                yield index
                break
            x -= share
        else:
            yield 1_000 + rng.randrange(tail)


@pytest.mark.parametrize("field, value", [
    ("threshold", 0), ("threshold", 1.5), ("replica_load", -0.1), ("max_replicas", 0), ("sample", 0),
    ("half_life", 4), ("sample", True),
])
def test_policy_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(HotKeyError, match=field):
        replace(POLICY, **{field: value})


def test_replicas_keep_each_replica_within_its_load_capped_by_the_maximum_and_the_members():
    assert replica_count(0.01, 10, 0.02, 0.5, 4) == 1  # below the threshold
    assert replica_count(0.05, 10, 0.02, 0.5, 4) == 1  # exactly half a fair share: one replica holds it
    assert replica_count(0.051, 10, 0.02, 0.5, 4) == 2
    assert replica_count(0.135, 10, 0.02, 0.5, 4) == 3  # 4.5% each
    assert replica_count(0.5, 10, 0.02, 0.5, 4) == 4  # the cap
    assert replica_count(0.5, 3, 0.02, 0.1, 16) == 3  # never more than the members
    assert replica_count(0.9, 1, 0.02, 0.1, 16) == 1


def test_a_key_above_the_threshold_is_found_with_its_share_and_replicas():
    rng = random.Random(7)
    counter = HotKeys(POLICY)
    hot_hash, hot_name = _key(1)
    last = 1
    for index in _stream(rng, 40_000, {1: 0.14, 2: 0.01}):
        h, name = _key(index)
        r = counter.observe(h, name, 10)
        if index == 1:
            last = r
    assert last == 3  # 14% over 10 members at half a fair share each: at most 5% per replica
    snapshot = counter.snapshot()
    assert [key for key, _, _ in snapshot] == [hot_name]  # 1% is under the threshold
    _, share, replicas = snapshot[0]
    assert 0.12 < share < 0.16 and replicas == 3
    assert counter.replicas(hot_hash, 10) == 3
    assert counter.replicas(hot_hash, 3) == 1  # a member's fair share is 33%: half of it holds 14%
    assert counter.replicas(hot_hash, 30) == 4  # the cap
    assert counter.hot_count() == 1


def test_memory_stays_bounded_under_a_stream_of_distinct_keys():
    counter = HotKeys(POLICY)
    for i in range(60_000):
        h, name = _key(i)
        assert counter.observe(h, name, 10) == 1
    assert len(counter.counted) <= POLICY.capacity == 200
    assert counter.snapshot() == [] and counter.hot == {}
    assert counter.total <= 2 * POLICY.half_life


def test_a_key_that_cools_returns_to_one_replica():
    rng = random.Random(3)
    counter = HotKeys(POLICY)
    hot_hash, hot_name = _key(1)
    for index in _stream(rng, 20_000, {1: 0.3}):
        counter.observe(*_key(index), 10)
    assert counter.replicas(hot_hash, 10) == 4
    # The key stops: after a few half-lives of other traffic (512 counted, about 2,048 requests each).
    seen = []
    for i, index in enumerate(_stream(rng, 20_000, {})):
        counter.observe(*_key(index), 10)
        if i % 2_000 == 0:
            seen.append(counter.replicas(hot_hash, 10))
    assert seen[0] == 4 and seen[-1] == 1
    assert seen == sorted(seen, reverse=True)  # it cools monotonically, no flapping back
    assert hot_name not in [key for key, _, _ in counter.snapshot()]
    # And when it comes back at a lower share, it gets fewer replicas.
    for index in _stream(rng, 20_000, {1: 0.07}):
        counter.observe(*_key(index), 10)
    assert counter.replicas(hot_hash, 10) == 2


def test_a_burst_key_is_found_within_a_few_thousand_requests():
    rng = random.Random(5)
    counter = HotKeys(POLICY)
    for index in _stream(rng, 20_000, {}):
        counter.observe(*_key(index), 10)
    burst_hash, _ = _key(1)
    for n, index in enumerate(_stream(rng, 20_000, {1: 0.3}), start=1):
        if counter.observe(*_key(index), 10) > 1 and index == 1:
            break
    assert n < 2_000


def test_a_fresh_worker_does_not_call_its_first_key_hot_until_the_noise_is_ruled_out():
    counter = HotKeys(replace(POLICY, sample=1))
    h, name = _key(1)
    replicas = [counter.observe(h, name, 10) for _ in range(40)]
    print(replicas)
    assert replicas[:int(Z ** 2)] == [1] * int(Z ** 2)  # no verdict on the first Z² counts
    assert replicas == sorted(replicas)  # the evidence only grows: replicas never go back
    assert replicas[15] == 4  # every request so far was for it: all replicas once it is sure


def test_a_flat_set_of_keys_counted_a_few_times_each_is_never_spread():
    """Sixty keys at 1.7% each over three members: spreading starts at 3.3% (a tenth of a
    fair share), so only sampling noise could spread one. Many fresh workers, few counts each."""
    policy = HotKeyPolicy(threshold=0.01, replica_load=0.1, max_replicas=16, sample=8, half_life=2048)
    rng = random.Random(11)
    spread = 0
    for seed in range(200):
        counter = HotKeys(policy, seed=seed)
        for _ in range(2_000):
            index = rng.randrange(60)
            spread += counter.observe(*_key(index), 3) > 1
    assert spread == 0


def test_sampling_counts_about_one_request_in_sample():
    counter = HotKeys(replace(POLICY, sample=8, half_life=1_000_000))
    for i in range(80_000):
        counter.observe(*_key(i % 100), 10)
    assert 9_000 < counter.total < 11_000
    assert counter.observed == 80_000
