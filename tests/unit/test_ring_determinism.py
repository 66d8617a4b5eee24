"""Two interpreters with different PYTHONHASHSEED build the same ring and route 10,000 keys
the same way, and so does this one: nothing in the ring depends on Python's ``hash()``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from balancer.ring import build_ring, key_hash

REPO = Path(__file__).resolve().parents[2]

# Mixed weights and IDs with non-ASCII characters: everything a process could get wrong.
FLEET = {f"render-{i:02d}": 1.0 + (i % 4) * 0.5 for i in range(17)} | {"rendu-é": 2.0, "z-node": 0.25}

SCRIPT = """
import json, sys
from balancer.ring import build_ring, key_hash
fleet = json.loads(sys.argv[1])
ring = build_ring(dict(reversed(list(fleet.items()))))  # another insertion order, on purpose
keys = [f"/photos/{i}.jpg?w={i % 7 * 100}&fm=webp" for i in range(10_000)]
print(json.dumps({
    "version": ring.version,
    "owners": [ring.owner(key_hash(k)) for k in keys],
    "lists": [ring.preference(key_hash(k), 3) for k in keys[:500]],
    "hashes": [key_hash(k) for k in keys[:50]],
}))
"""


def _run(hashseed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(FLEET)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_two_interpreters_with_different_hash_seeds_route_keys_identically():
    first, second = _run("1"), _run("4242")
    assert len(first["owners"]) == 10_000
    assert first == second

    ring = build_ring(FLEET)
    assert first["version"] == ring.version
    keys = [f"/photos/{i}.jpg?w={i % 7 * 100}&fm=webp" for i in range(10_000)]
    assert first["owners"] == [ring.owner(key_hash(k)) for k in keys]
    assert first["lists"] == [list(ring.preference(key_hash(k), 3)) for k in keys[:500]]
    # Every member owns some of the keys: the comparison is not between two trivial rings.
    assert set(first["owners"]) == set(FLEET)
