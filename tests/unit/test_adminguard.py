"""The admin API's guard (balancer.adminguard) and the configuration that feeds it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from balancer.adminguard import AdminPolicy, judge_change, start_problem
from balancer.config import ConfigError, load_config
from pixring.config import redact_userinfo

LOOPBACK = AdminPolicy("127.0.0.1", "tok")


def judge(policy=LOOPBACK, *, host="127.0.0.1:8081", origin=None, auth="Bearer tok", local="127.0.0.1"):
    return judge_change(policy, host=host, origin=origin, authorization=auth, local_address=local)


def test_a_request_with_the_token_to_the_listeners_own_address_passes():
    assert judge() is None
    assert judge(host="localhost:8081") is None
    assert judge(origin="http://127.0.0.1:8081") is None


@pytest.mark.parametrize("kwargs, status", [
    ({"origin": "http://evil.example"}, 403),         # CSRF from a web page
    ({"origin": "null"}, 403),                        # a sandboxed page or a file
    ({"host": "evil.example:8081"}, 403),             # DNS rebinding to 127.0.0.1
    ({"host": ""}, 403),
    ({"auth": ""}, 401),
    ({"auth": "Bearer wrong"}, 401),
])
def test_forged_or_unauthorized_changes_are_refused(kwargs, status):
    refusal = judge(**kwargs)
    assert refusal is not None and refusal[0] == status


def test_names_the_operator_lists_and_the_local_address_of_a_wildcard_bind():
    policy = AdminPolicy("0.0.0.0", "tok", names=("admin.internal",))
    assert judge(policy, host="admin.internal:8081", local="10.1.2.3") is None
    assert judge(policy, host="10.1.2.3:8081", local="10.1.2.3") is None
    assert judge(policy, host="10.9.9.9:8081", local="10.1.2.3") is not None
    assert judge(AdminPolicy("::1", "tok"), host="[::1]:8081", local="::1") is None


def test_without_a_token_only_an_opened_loopback_listener_takes_changes():
    assert judge(AdminPolicy("127.0.0.1", ""), auth="")[0] == 403
    assert judge(AdminPolicy("127.0.0.1", "", open_loopback=True), auth="") is None
    # Opened or not, the Host and Origin rules hold.
    assert judge(AdminPolicy("127.0.0.1", "", open_loopback=True), auth="", origin="http://evil.example")[0] == 403


def test_a_reachable_listener_without_a_token_does_not_start():
    assert start_problem(AdminPolicy("0.0.0.0", ""), "0.0.0.0:8081") is not None
    assert start_problem(AdminPolicy("0.0.0.0", "t"), "0.0.0.0:8081") is None
    assert start_problem(AdminPolicy("127.0.0.1", ""), "127.0.0.1:8081") is None
    with pytest.raises(ConfigError, match="no token"):
        load_config(environ={}, flags={"admin": "0.0.0.0:8081"})
    done = subprocess.run([sys.executable, "-m", "pixring.cli", "balancer", "--admin", "0.0.0.0:0",
                           "--node", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "no token" in done.stderr


def test_token_files_are_read_and_never_printed(tmp_path):
    admin, sign = tmp_path / "admin", tmp_path / "sign"
    admin.write_text("adm1n-secret\n")
    sign.write_text("s1gn-secret\n")
    config = load_config(environ={}, flags={"admin": "0.0.0.0:8081", "admin_token_file": str(admin),
                                            "sign_token_file": str(sign), "consul_addr": "http://u:pw@consul:8500"})
    assert config.admin_token == "adm1n-secret" and config.sign_token == "s1gn-secret"
    summary = repr(config.summary())
    assert "secret" not in summary and "pw" not in summary and "(redacted)@consul:8500" in summary
    # The workers get the tokens, not the files, and read them back to the same config.
    assert load_config(environ={}, flags=config.as_flags()) == config
    with pytest.raises(ConfigError, match="both set"):
        load_config(environ={}, flags={"sign_token": "x", "sign_token_file": str(sign)})
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        load_config(environ={}, flags={"tls_cert": "c.pem"})


def test_redact_userinfo():
    assert redact_userinfo("https://user:pass@consul.example:8501") == "https://(redacted)@consul.example:8501"
    assert redact_userinfo("user:pass@127.0.0.1:8500") == "(redacted)@127.0.0.1:8500"
    assert redact_userinfo("127.0.0.1:8500") == "127.0.0.1:8500"
