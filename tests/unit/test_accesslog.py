"""Access log lines (balancer/accesslog.py): one JSON object per request, whatever it carries."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.accesslog import AccessLog, json_text, target_fields
from balancer.headers import is_valid_request_id

_TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),  # mostly plain
    st.text(max_size=20),  # anything: quotes, backslashes, controls, non-ASCII
)
_BYTES = st.one_of(_TEXT.map(lambda t: t.encode("utf-8")), st.binary(max_size=30))
_REQUEST_ID = st.one_of(st.sampled_from([b"1f2e3d4c-1a", b"trace-00-abc-01"]),
                        st.binary(min_size=1, max_size=40).filter(is_valid_request_id))


@settings(max_examples=300, deadline=None)
@given(
    when=st.floats(1e9, 3e9), request_id=_REQUEST_ID, client=st.sampled_from([b"127.0.0.1", b"::1", b"-"]),
    method=st.sampled_from([b"GET", b"HEAD", b"POST"]), path=_BYTES, key=st.none() | _TEXT,
    node=st.none() | _BYTES, status=st.integers(100, 599), sent=st.integers(0, 10**9), attempts=st.integers(0, 5),
    total_ms=st.floats(0, 1e6), upstream_ms=st.none() | st.floats(0, 1e6), aborted=st.booleans(),
)
def test_every_request_line_is_one_json_object_with_the_values_given(
        tmp_path_factory, when, request_id, client, method, path, key, node, status, sent, attempts, total_ms,
        upstream_ms, aborted):
    file = tmp_path_factory.mktemp("log") / "access.log"
    log = AccessLog(str(file))
    log.request(when, request_id, client, method, target_fields(path, key),
                b"null" if node is None else json_text(node), status, sent, attempts, total_ms, upstream_ms, aborted)
    log.close()
    lines = file.read_bytes().splitlines()
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert abs(record["time"] - when) < 1e-5
    assert record["request_id"] == request_id.decode()
    assert record["client"] == client.decode()
    assert record["method"] == method.decode()
    assert record["path"] == path.decode("latin-1")
    assert record["key"] == key
    assert record["node"] == (None if node is None else node.decode("latin-1"))
    assert (record["status"], record["bytes"], record["attempts"]) == (status, sent, attempts)
    assert abs(record["total_ms"] - total_ms) <= 0.0005 + 1e-9 * total_ms
    if upstream_ms is None:
        assert record["upstream_ms"] is None
    else:
        assert abs(record["upstream_ms"] - upstream_ms) <= 0.0005 + 1e-9 * upstream_ms
    assert record.get("aborted", False) is aborted


def test_lines_are_buffered_and_written_whole_on_flush(tmp_path):
    file = tmp_path / "access.log"
    log = AccessLog(str(file), max_buffer=1 << 20)
    target = target_fields(b"/a.jpg?w=1", "/a.jpg?w=1")
    for i in range(100):
        log.request(1.5e9, b"rid-%d" % i, b"127.0.0.1", b"GET", target, b'"n1"', 200, 10, 1, 1.0, 0.5, False)
    assert file.read_bytes() == b""  # nothing written per request
    log.flush()
    lines = file.read_bytes().splitlines()
    assert [orjson.loads(line)["request_id"] for line in lines] == [f"rid-{i}" for i in range(100)]
    log.close()


def test_off_writes_nothing(tmp_path, monkeypatch, capfd):
    """access_log = "off": no line reaches stdout, and "off" is not taken for a file name."""
    monkeypatch.chdir(tmp_path)
    log = AccessLog("off")
    log.request(1.5e9, b"r", b"-", b"GET", target_fields(b"/", None), b"null", 400, 0, 0, 0.1, None, False)
    log.flush()
    log.close()
    assert capfd.readouterr().out == ""
    assert list(tmp_path.iterdir()) == []
    assert not log.enabled
