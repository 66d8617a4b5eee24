"""The capacity test's traffic model: its URLs are what the balancer keys, its spellings are
equivalent by the balancer's own normalizer, its popularity is skewed, its tally adds up.

The normalizer used here is ``balancer.normalize`` itself, so the generator cannot drift
from it: a spelling the normalizer would key differently fails these tests.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from balancer.normalize import make_normalizer
from loadtest import spellings, traffic
from loadtest.spellings import equivalent_spelling
from loadtest.tally import Tally
from loadtest.traffic import Popularity, Target, build_catalog, source_path
from pixring import schema
from renderer.samples import SAMPLES

normalize = make_normalizer("imgix", cache_size=0)


def key(url: str) -> str:
    return normalize(url.encode()).key


@pytest.fixture(scope="module")
def catalog() -> tuple[Target, ...]:
    return build_catalog()


def test_default_sources_are_the_samples_pixring_up_generates():
    assert traffic.DEFAULT_SOURCES == tuple("/" + sample.name for sample in SAMPLES)


def test_catalog_is_distinct_canonical_and_renderable(catalog):
    urls = [target.url for target in catalog]
    assert len(urls) == len(set(urls)) == len(traffic.DEFAULT_SOURCES) * traffic.DEFAULT_URLS_PER_SOURCE
    for target in catalog:
        assert key(target.url) == target.url  # already canonical: the balancer forwards it as is
        # ...and the reference renderer renders it (no 400 is the traffic's fault).
        schema.parse_query(list(target.params), renderable_only=True)
    assert {target.path for target in catalog} == set(traffic.DEFAULT_SOURCES)


def test_catalog_is_a_function_of_its_arguments(catalog):
    assert build_catalog() == catalog
    assert build_catalog(seed=2) != catalog
    small = build_catalog(["/a.jpg"], urls_per_source=5)
    assert len(small) == 5 and {t.path for t in small} == {"/a.jpg"}


def test_catalog_mixes_the_shapes_sites_ask_for(catalog):
    names = Counter(name for target in catalog for name, _ in target.params)
    for name in ("w", "h", "fit", "fm", "q", "dpr", "auto", "crop"):
        assert names[name] > 0, name
    # Popularity rank is a shuffle, not the source order: the top ten mix sources.
    assert len({target.path for target in catalog[:10]}) > 3


def test_every_spelling_keys_like_its_canonical_url(catalog):
    rng = random.Random(7)
    used = Counter()
    for target in catalog:
        for _ in range(25):
            url = equivalent_spelling(target, rng)
            assert url != target.url
            assert key(url) == target.url, url
            used[url.startswith(target.path + "?")] += 1
    assert used[False] > 0  # some spellings changed the path too


@pytest.mark.parametrize("name", sorted(spellings.SPELLINGS))
def test_each_respelling_alone_is_equivalent_and_applies_somewhere(name, catalog):
    respell = spellings.SPELLINGS[name]
    rng = random.Random(name)
    applied = 0
    for target in catalog:
        spelling = spellings.Spelling(target.path, list(target.params))
        if respell(spelling, rng):
            applied += 1
            assert spelling.url != target.url
            assert key(spelling.url) == target.url, (name, spelling.url)
    assert applied > 0, f"{name} never applied to the default catalogue"


def test_spellings_avoid_what_the_http_client_would_rewrite(catalog):
    # geventhttpclient refuses a leading "//" and decodes escapes of unreserved characters.
    rng = random.Random(3)
    for target in catalog[:100]:
        for _ in range(20):
            url = equivalent_spelling(target, rng)
            assert not url.startswith("//")
            for escape in [url[i + 1:i + 3].upper() for i, char in enumerate(url) if char == "%"]:
                assert escape in ("2C", "3A"), url


def test_source_paths_are_canonical_for_the_normalizer():
    assert source_path("photos/cat.jpg") == "/photos/cat.jpg"
    assert source_path(" /my photos/ça.jpg ") == "/my%20photos/%C3%A7a.jpg"
    assert key(source_path("my photos/ça.jpg")) == source_path("my photos/ça.jpg")
    for bad in ("", "/a.jpg?w=1", "/a/../b.jpg", "/a//b.jpg", "./a.jpg", "/a#b"):
        with pytest.raises(ValueError):
            source_path(bad)


def test_catalogue_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="source"):
        build_catalog([])
    with pytest.raises(ValueError, match="at least 1"):
        build_catalog(["/a.jpg"], urls_per_source=0)


def test_popularity_is_zipf_like():
    popularity = Popularity(1000, 0.8)
    rng = random.Random(1)
    counts = Counter(popularity.draw(rng) for _ in range(100_000))
    assert set(counts) <= set(range(1000))
    # Rank 1 vs rank 10: 10**0.8 = 6.3 times more often (sampling noise is a few percent).
    assert 5.0 < counts[0] / counts[9] < 8.0
    top = sum(counts[i] for i in range(10)) / 100_000
    assert abs(top - popularity.share_of_top(10)) < 0.01
    assert popularity.share_of_top(10) > 0.1 > 10 / 1000  # a few URLs are hot
    assert popularity.share_of_top(1000) == pytest.approx(1.0)


def test_zero_exponent_is_uniform_and_bad_ones_are_refused():
    assert Popularity(4, 0).share_of_top(1) == pytest.approx(0.25)
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="exponent"):
            Popularity(4, bad)
    with pytest.raises(ValueError, match="at least one"):
        Popularity(0)


def test_tally_counts_nodes_cache_failures_and_groups():
    tally = Tally()
    tally.record("/a?w=1", False, "r1", "miss")
    tally.record("/a?w=1", True, "r1", "hit")
    tally.record("/b", True, "r2", "hit-disk")
    tally.record("/b", False, None, None)
    tally.record_failure("HTTP 503")
    assert tally.nodes == {"r1": 2, "r2": 1}
    assert tally.untagged == 1
    assert tally.cache == {"miss": 1, "hit": 1, "hit-disk": 1}
    assert tally.failures == {"HTTP 503": 1}
    assert tally.groups == {"/a?w=1": ({"r1": 2}, 1), "/b": ({"r2": 1}, 1)}


def test_tallies_merge_and_survive_json():
    first, second = Tally(), Tally(started=1000.0)  # only the master marks the load's start
    first.record("/a", True, "r1", "hit")
    second.record("/a", False, "r2", "miss")
    second.record_failure("ConnectionRefusedError")
    second.record_shed("r2")
    restored = Tally.from_json(json.loads(json.dumps(second.to_json())))
    assert restored == second
    first.merge(restored)
    assert first.nodes == {"r1": 1, "r2": 1}
    assert first.groups == {"/a": ({"r1": 1, "r2": 1}, 1)}
    assert first.failures == {"ConnectionRefusedError": 1}
    assert first.shed == {"r2": 1}
    assert first.cache == {"hit": 1, "miss": 1}
    assert first.started == 1000.0
    first.merge(Tally(started=1010.0))
    assert first.started == 1000.0  # the earliest start
