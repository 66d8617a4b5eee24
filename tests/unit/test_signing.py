"""Signed URLs: pixring.signing against an independent reading of imgix's scheme, the
gate (balancer.sources) that applies it per source, and ``pixring sign``."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

import pytest

from balancer.normalize import NormalizeError
from balancer.renderlimit import RenderLimiter, client_address, parse_networks
from balancer.sources import Gate, Refusal, Source, host_name, parse_sources
from pixring import signing

TOKEN = "aBcD1234tok"
NOW = 1_800_000_000


def imgix_s(token: str, url_path_and_query: str) -> str:
    """imgix's documented scheme, written out here apart from pixring's code: the MD5 of
    the token, the path as sent and, when the query without s is not empty, '?' and it."""
    path, _, query = url_path_and_query.partition("?")
    rest = "&".join(p for p in query.split("&") if not p.startswith("s=")) if query else ""
    return hashlib.md5((token + path + ("?" + rest if rest else "")).encode()).hexdigest()


def check(target: str, token: str = TOKEN, now: float = NOW, mode: str = "md5") -> str | None:
    path, _, query = target.encode().partition(b"?")
    return signing.verify(path, query, token.encode(), now, mode)


@pytest.mark.parametrize("target", [
    "/a.jpg", "/a.jpg?w=400", "/photos/b%20c.jpg?w=400&h=300&fit=crop", "/x.png?fm=webp&w=1&blur=20",
])
def test_the_signature_matches_an_independent_implementation(target):
    signed = signing.sign(target, TOKEN)
    expected = imgix_s(TOKEN, target)
    assert signed == (f"{target}&s={expected}" if "?" in target else f"{target}?s={expected}")
    assert check(signed) is None


def test_a_known_vector_computed_by_hand():
    # md5("secret" + "/img.jpg" + "?" + "w=100") computed with hashlib, not with pixring.
    expected = hashlib.md5(b"secret/img.jpg?w=100").hexdigest()
    assert signing.sign("/img.jpg?w=100", "secret") == f"/img.jpg?w=100&s={expected}"
    assert signing.sign("https://img.example.com/img.jpg?w=100", "secret") == \
        f"https://img.example.com/img.jpg?w=100&s={expected}"


def test_hmac_mode_uses_the_token_as_key():
    expected = hmac.new(TOKEN.encode(), b"/a.jpg?w=1", hashlib.sha256).hexdigest()
    assert signing.sign("/a.jpg?w=1", TOKEN, mode="hmac-sha256") == f"/a.jpg?w=1&s={expected}"
    assert check(f"/a.jpg?w=1&s={expected}", mode="hmac-sha256") is None
    assert check(f"/a.jpg?w=1&s={expected}", mode="md5") is not None


@pytest.mark.parametrize("tamper, reason", [
    (lambda u: u.replace("/a.jpg", "/b.jpg"), "does not match"),                  # path
    (lambda u: u.replace("w=400", "w=401"), "does not match"),                    # query
    (lambda u: u.replace("w=400&h=300", "h=300&w=400"), "does not match"),        # reordered: covers the bytes
    (lambda u: u.replace("w=400", "w=%34%30%30"), "does not match"),              # re-encoded
    (lambda u: u.split("&s=")[0], "not signed"),                                  # missing
    (lambda u: u + "&s=00", "more than one"),
    (lambda u: u.replace("&s=", "&s=0"), "does not match"),
])
def test_tampered_urls_are_refused(tamper, reason):
    signed = signing.sign("/a.jpg?w=400&h=300", TOKEN)
    assert check(signed) is None
    assert reason in (check(tamper(signed)) or "")


def test_another_token_does_not_verify():
    assert "does not match" in check(signing.sign("/a.jpg?w=1", "other"))


def test_expires_is_covered_and_checked():
    signed = signing.sign("/a.jpg?w=1", TOKEN, expires=NOW + 60)
    assert "expires=1800000060" in signed
    assert check(signed, now=NOW) is None
    assert "expired" in check(signed, now=NOW + 60)
    # Moving the expiry breaks the signature.
    assert "does not match" in check(signed.replace("expires=1800000060", "expires=1900000000"), now=NOW)
    # A non-number expiry signed with the token is still refused.
    assert "Unix seconds" in check(signing.sign("/a.jpg?expires=soon", TOKEN))


def test_unsigned_drops_s_and_expires_only():
    assert signing.unsigned(b"/a.jpg", b"w=1&s=ab&expires=9&h=2") == b"/a.jpg?w=1&h=2"
    assert signing.unsigned(b"/a.jpg", b"s=ab") == b"/a.jpg"
    assert signing.unsigned(b"/a.jpg", b"") == b"/a.jpg"


# -- sources and the gate -------------------------------------------------------------------

def test_parse_sources_checks_every_key(tmp_path):
    token_file = tmp_path / "t"
    token_file.write_text("filetoken\n")
    sources = parse_sources([
        {"name": "acme", "hosts": ["img.acme.test", "Cdn.Acme.Test."], "sign_token_file": str(token_file)},
        {"name": "beta", "hosts": "img.beta.test", "profile": "generic", "upstream_host": "beta.internal:8080"},
    ])
    assert sources[0].hosts == ("img.acme.test", "cdn.acme.test") and sources[0].sign_token == "filetoken"
    assert sources[0].namespace == "acme" and sources[1].profile == "generic"
    assert "filetoken" not in repr(sources[0].public())
    for bad, message in [
        ([{"name": "a", "hosts": []}], "at least one Host"),
        ([{"name": "a", "hosts": ["x"], "color": 1}], "unknown key 'color'"),
        ([{"name": "a", "hosts": ["x"]}, {"name": "b", "hosts": ["X"]}], "already belongs"),
        ([{"name": "default", "hosts": ["x"]}], "reserved"),
        ([{"name": "a", "hosts": ["x"], "profile": "nope"}], "profile"),
        ([{"name": "a", "hosts": ["x"], "namespace": "a/b"}], "namespace"),
        ([{"name": "a", "hosts": ["x"], "sign_token": "t", "sign_token_file": str(token_file)}], "not both"),
        ([{"name": "a", "hosts": ["x"], "sign_token_file": str(tmp_path / "missing")}], "cannot read"),
        ([{"name": "a", "hosts": ["http://x"]}], "not a host name"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_sources(bad)


def test_host_name_drops_port_case_and_trailing_dot():
    assert host_name(b"IMG.Acme.Test.:8080") == "img.acme.test"
    assert host_name(b"[::1]:80") == "[::1]"


def test_the_gate_picks_the_source_by_host_and_checks_its_signature():
    acme = Source("acme", ("img.acme.test",), sign_token="acmetok", namespace="acme")
    beta = Source("beta", ("img.beta.test",), namespace="beta", upstream_host="beta.internal")
    gate = Gate(Source("default"), (acme, beta))
    lane, target, _ = gate.admit(b"/logo.png", b"img.beta.test", NOW)
    assert lane.name == "beta" and target == b"/logo.png" and lane.host_line == b" HTTP/1.1\r\nHost: beta.internal\r\n"
    refused = gate.admit(b"/logo.png", b"img.acme.test", NOW)
    assert isinstance(refused, Refusal) and refused.status == 403 and refused.source == "acme"
    signed = signing.sign("/logo.png?w=10", "acmetok", expires=NOW + 5).encode()
    lane, target, _ = gate.admit(signed, b"IMG.ACME.TEST:443", NOW)
    assert lane.name == "acme" and target == b"/logo.png?w=10"  # s and expires never reach the key
    # An absolute-form target is checked on its path and query.
    lane, _, _ = gate.admit(b"http://img.acme.test" + signed, b"img.acme.test", NOW)
    assert lane.name == "acme"
    with pytest.raises(NormalizeError):
        gate.admit(b"*", b"img.acme.test", NOW)
    # An unknown Host: the default source, or 404 when configured to refuse.
    lane, _, _ = gate.admit(b"/logo.png", b"other.test", NOW)
    assert lane.name == "default" and lane.cache_prefix == b"" and lane.key_prefix == ""
    strict = Gate(Source("default"), (acme,), refuse_unknown=True)
    refused = strict.admit(b"/logo.png", b"other.test", NOW)
    assert isinstance(refused, Refusal) and refused.status == 404 and refused.source == "-"


def test_no_gate_without_sources_or_signing():
    assert Gate.build(Source("default"), (), refuse_unknown=True) is None
    assert Gate.build(Source("default", sign_token="t"), (), refuse_unknown=False) is not None
    assert Gate.build(Source("default"), (), refuse_unknown=False, limiter=RenderLimiter(1, 1.0)) is not None


# -- pixring sign -------------------------------------------------------------------------------

def test_pixring_sign_prints_the_signed_url(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    done = subprocess.run([sys.executable, "-m", "pixring.cli", "sign", "--token-file", str(token_file),
                           "/photos/a.jpg?w=400&h=300"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"/photos/a.jpg?w=400&h=300&s={imgix_s(TOKEN, '/photos/a.jpg?w=400&h=300')}"
    refused = subprocess.run([sys.executable, "-m", "pixring.cli", "sign", "/a.jpg"], capture_output=True,
                             text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert refused.returncode == 2 and "no token" in refused.stderr


# -- the render limit (balancer.renderlimit) through the gate ----------------------------------

def test_the_render_limit_counts_renders_per_client_and_answers_429_until_the_window_ends():
    limiter = RenderLimiter(2, 10.0)
    gate = Gate(Source("default"), limiter=limiter, trusted=parse_networks(["10.0.0.0/8"]))
    miss = [b"X-Render-Cache", b": ", b"miss", b"\r\n"]
    hit = [b"X-Render-Cache", b": ", b"hit", b"\r\n"]
    lane, target, client = gate.admit(b"/a.jpg", b"h", NOW, b"192.0.2.1")
    assert client == b"192.0.2.1"
    for _ in range(5):
        gate.answered(client, 200, hit, NOW)  # cache hits cost nothing
    gate.answered(client, 200, miss, NOW)
    gate.answered(client, 200, [], NOW + 1)  # no header: counted as a render
    refused = gate.admit(b"/a.jpg", b"h", NOW + 4, b"192.0.2.1")
    assert isinstance(refused, Refusal) and refused.status == 429 and refused.retry_after == 6
    assert refused.result == "limited"
    assert not isinstance(gate.admit(b"/a.jpg", b"h", NOW + 4, b"192.0.2.2"), Refusal)  # another client
    assert not isinstance(gate.admit(b"/a.jpg", b"h", NOW + 10, b"192.0.2.1"), Refusal)  # a new window


def test_the_client_behind_a_trusted_proxy_is_the_forwarded_one_and_no_one_else_is_believed():
    trusted = parse_networks(["10.0.0.0/8", "192.0.2.9"])
    assert client_address(b"10.1.1.1", b"203.0.113.5, 192.0.2.9", trusted) == b"203.0.113.5"
    assert client_address(b"10.1.1.1", b"spoofed, 203.0.113.5", trusted) == b"203.0.113.5"
    assert client_address(b"198.51.100.7", b"203.0.113.5", trusted) == b"198.51.100.7"  # not a proxy of ours
    assert client_address(b"10.1.1.1", b"", trusted) == b"10.1.1.1"
    with pytest.raises(ValueError, match="CIDR"):
        parse_networks(["10.0.0.0/33"])


def test_the_limiter_forgets_the_least_recent_clients_past_its_bound():
    limiter = RenderLimiter(1, 60.0, max_clients=2)
    for client in (b"a", b"b", b"c"):
        limiter.charge(client, NOW)
    assert limiter.retry_after(b"a", NOW) == 0 and limiter.retry_after(b"c", NOW) == 60
