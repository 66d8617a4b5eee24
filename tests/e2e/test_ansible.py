"""The Ansible deployment (ansible/), linted and applied for real.

``test_lint`` runs ansible-lint on ansible/ (production profile, offline: the
settings are in ansible/.ansible-lint) and fails on any violation.

``test_site_deploys_a_working_tier`` applies ansible/site.yml with a local
connection to this machine, every path (install prefix, config, units, state,
Consul's directories) inside the test's tmp_path, as the user running pytest, with
``pixring_manage_services: false`` because this machine has no running systemd, and
Consul in its "config only" mode (``consul_install: false``) since no Consul binary
can be installed here. It installs pixring from a wheel built from this checkout into
a fresh virtualenv, just as a host gets it. Then it checks what the roles wrote
(``systemd-analyze verify`` on the installed units, the product's config loader on
the balancer's TOML, the Consul agent's JSON), starts the renderer and the balancer
*exactly* as their units say (ExecStart, Environment, EnvironmentFile,
WorkingDirectory, parsed from the installed files) next to the Consul double
(tests/consul_double, as a process), and proves the tier works: the renderer
registers, the balancer discovers it, /readyz is 200, and a JPEG from the origin
comes back through the balancer as a 100 px wide WebP, served by a request path the
role compiled on the host. SIGTERM stops both with exit 0 and no process left over. A
second apply must change nothing.

What no test here can show: that systemd starts these units (there is none to ask;
the units' ExecStart is what runs), that the hardening options leave the services
working under systemd, and anything of the Consul install (apt repository, package,
a real agent). ansible/README.md says so for operators too.
"""

from __future__ import annotations

import getpass
import grp
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest

from loadtest.tools import ensure_tools
from tests.e2e.notifysocket import NotifySocket
from tests.e2e.proctree import alive, descendants

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
VENV_BIN = Path(sys.executable).parent  # ansible-playbook and ansible-lint come with the test extras
SERVICE = "pixring-renderer"
# What a wheel is built from: the packages of pyproject.toml and the files it names.
PACKAGE_SOURCES = ("pyproject.toml", "README.md", "pixring", "balancer", "discovery", "renderer")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def tool(name: str) -> str:
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would configure pixring or Consul behind the test's back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXRING_", "CONSUL_HTTP_", "ANSIBLE_"))}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except (urllib.error.URLError, OSError):
        return 0, {}, b""


def wait_for(what: str, predicate, watch: list[subprocess.Popen], timeout: float = 30.0) -> None:
    """Poll until true: a deadline for a broken deployment, not a timing assertion.
    A watched process that exits meanwhile fails the wait at once, with its stderr."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        for proc in watch:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"{what}: {proc.args[:2]} exited {proc.returncode}:\n{err[-3000:]}")
        if predicate():
            print(f"  {what}: {time.monotonic() - started:.2f}s")
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g}s waiting for: {what}")


# -- ansible-lint -------------------------------------------------------------------


def test_lint(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor", "--format", "pep8"],
        cwd=ANSIBLE_DIR,
        env=clean_env(
            # No network: no schema refresh, no "newer version" check, no Galaxy.
            ANSIBLE_LINT_SKIP_SCHEMA_UPDATE="1",
            ANSIBLE_LINT_NODEPS="1",
            ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
            HOME=os.environ.get("HOME", str(tmp_path)),
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(f"ansible-lint: {time.monotonic() - started:.1f}s, exit {result.returncode}")
    print(result.stdout)
    print(result.stderr)
    assert result.returncode == 0, f"ansible-lint found violations:\n{result.stdout}\n{result.stderr}"
    assert "Profile 'production' was required, and it passed" in result.stderr


# -- the deployment -----------------------------------------------------------------


def build_wheel(tmp: Path) -> Path:
    """A wheel of this checkout, built from a copy so the shared tree gets no build/ or egg-info."""
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "*.egg-info")
    for name in PACKAGE_SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = dist.glob("pixring-*.whl")
    return wheel


def inventory(tmp: Path, wheel: Path, consul_addr: str, ports: dict[str, int], origin: Path) -> dict:
    user = getpass.getuser()
    group = grp.getgrgid(os.getgid()).gr_name
    root = tmp / "root"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,
        # The pixring role: a fresh virtualenv from the wheel, as the current user.
        "pixring_package": f"./{wheel.relative_to(tmp)}",  # relative to where ansible-playbook runs
        "pixring_python": sys.executable,
        "pixring_install_os_packages": False,
        "pixring_user": user,
        "pixring_group": group,
        "pixring_create_user": False,
        "pixring_config_owner": user,
        "pixring_prefix": str(root / "opt/pixring"),
        "pixring_config_dir": str(root / "etc/pixring"),
        "pixring_state_dir": str(root / "var/lib/pixring"),
        "pixring_systemd_dir": str(root / "etc/systemd/system"),
        "pixring_manage_services": False,
        # Consul: config only.
        "consul_install": False,
        "consul_create_user": False,
        "consul_user": user,
        "consul_group": group,
        "consul_config_owner": user,
        "consul_config_dir": str(root / "etc/consul.d"),
        "consul_data_dir": str(root / "opt/consul"),
        "consul_systemd_dir": str(root / "etc/systemd/system"),
        "consul_binary": str(root / "usr/bin/consul"),  # absent: validation is skipped, as documented
        "consul_datacenter": "dc-test",
        "consul_bind_addr": "127.0.0.1",
        "consul_retry_join": ["10.0.0.11", "10.0.0.12"],
        # The renderer, registering in the Consul double with fast checks.
        "renderer_listen": f"127.0.0.1:{ports['renderer']}",
        "renderer_admin": f"127.0.0.1:{ports['renderer_admin']}",
        "renderer_origin": str(origin),
        "renderer_advertise": "127.0.0.1",
        "renderer_render_workers": 1,
        "renderer_cache_bytes": "16M",
        "renderer_consul_addr": consul_addr,
        "renderer_consul_id": "render-a",
        "renderer_consul_tags": ["e2e"],
        "renderer_consul_check_interval": 0.2,
        "renderer_consul_deregister_after": 1,
        "renderer_shutdown_timeout": 5,
        "renderer_environment": {"PYTHONFAULTHANDLER": "1"},
        # The balancer, discovering through the double.
        "balancer_listen": f"127.0.0.1:{ports['public']}",
        "balancer_admin": f"127.0.0.1:{ports['admin']}",
        "balancer_workers": 1,
        "balancer_consul_addr": consul_addr,
        "balancer_drain_timeout": 5,
        # A short blocking wait so a stop is prompt; no slow start, so the first
        # request goes to the one node as soon as it is routable.
        "balancer_settings": {"consul_wait": 5, "slow_start": 0, "probe_interval": 0.5},
    }
    return {
        "all": {
            "hosts": {"localhost": host},
            "children": {"consul_servers": {"hosts": {}}, "renderers": {"hosts": {"localhost": None}},
                         "balancers": {"hosts": {"localhost": None}}},
        }
    }


def apply_site(tmp: Path, inventory_file: Path, label: str) -> tuple[int, dict[str, int]]:
    started = time.monotonic()
    result = subprocess.run(
        # As ansible/README.md has an operator run it: from their own directory (where
        # dist/ and the inventory are), the playbook by its path, the config named.
        [tool("ansible-playbook"), "-i", str(inventory_file), str(ANSIBLE_DIR / "site.yml")],
        cwd=tmp,
        env=clean_env(
            ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
            ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
            ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-tmp"),
            ANSIBLE_NOCOLOR="1",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    print(f"{label}: {elapsed:.1f}s, exit {result.returncode}")
    assert result.returncode == 0, f"{label} failed:\n{result.stdout[-12000:]}\n{result.stderr[-4000:]}"
    recaps = RECAP.findall(result.stdout)
    assert recaps, result.stdout[-4000:]
    # One recap per batch of each play (serial); sum them for the host.
    totals = {"ok": 0, "changed": 0, "failed": 0}
    for host, ok, changed, _unreachable, failed in recaps:
        assert host == "localhost"
        totals["ok"] += int(ok)
        totals["changed"] += int(changed)
        totals["failed"] += int(failed)
    if totals["changed"]:  # which tasks, for a failed idempotence check
        blocks = re.split(r"^(?:TASK|RUNNING HANDLER) \[", result.stdout, flags=re.M)[1:]
        tasks = [block.split("]", 1)[0] for block in blocks if re.search(r"^changed: ", block, re.M)]
        print(f"{label} changed: " + "; ".join(tasks))
    return result.returncode, totals


def unit_settings(path: Path) -> dict[str, list[str]]:
    """[Service] settings of a unit file, each key with every value it was given."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def systemd_words(text: str) -> list[str]:
    """A command line as systemd splits it, for the quoting the roles write: specifiers
    ("%%") and variables ("$$") escaped, arguments in double quotes (systemd.service(5))."""
    assert not re.search(r"%[^%]", text.replace("%%", "")), f"unexpected specifier in {text!r}"
    return [word.replace("%%", "%").replace("$$", "$") for word in shlex.split(text)]


def service_launch(unit: Path) -> tuple[list[str], dict[str, str], Path]:
    """argv, environment and working directory of a unit, as systemd would start it."""
    settings = unit_settings(unit)
    (exec_start,) = settings["ExecStart"]
    argv = systemd_words(exec_start)
    env = clean_env()
    for path_text in settings.get("EnvironmentFile", []):
        optional = path_text.startswith("-")
        path = Path(path_text.lstrip("-"))
        if optional and not path.exists():
            continue
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = shlex.split(line)[0].partition("=")
                env[key] = value
    for assignment in settings.get("Environment", []):
        for word in systemd_words(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    (workdir,) = settings["WorkingDirectory"]
    return argv, env, Path(workdir)


@pytest.fixture(scope="module")
def systemd_analyze() -> None:
    """The unit checker the roles (and this test) run: Debian's systemd package, installed
    when missing (a machine without a running systemd may not have it)."""
    ensure_tools(["systemd-analyze"], log=print)


# Two applies (each allowed 300 s by apply_site), a wheel build and the request path's mypyc
# compile on the "host": more than the session's 120 s default on a shared two-core machine
# (222 s for this test, 232 s for the tree before the renderer's config file, at one load).
@pytest.mark.timeout(900)
def test_site_deploys_a_working_tier(tmp_path: Path, systemd_analyze: None) -> None:
    from PIL import Image

    from balancer.config import load_config
    from pixring.cli.sources import check_sources
    from renderer.samples import Sample, generate

    measured: dict[str, float] = {}
    procs: list[subprocess.Popen] = []
    try:
        # The Consul double as its own process, as tests/e2e/test_consul_cluster.py runs it.
        consul = subprocess.Popen(
            [sys.executable, "-m", "tests.consul_double", "--port", "0", "--min-check-interval", "100ms",
             "--reap-interval", "200ms", "--min-deregister-after", "500ms"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env=clean_env(),
        )
        procs.append(consul)
        line = consul.stdout.readline()  # type: ignore[union-attr]
        assert "listening on" in line, line
        consul_addr = line.rsplit("http://", 1)[1].strip()

        started = time.monotonic()
        wheel = build_wheel(tmp_path)
        measured["wheel build"] = time.monotonic() - started

        origin = tmp_path / "origin"
        (origin / "photos").mkdir(parents=True)
        (origin / "photos/cat.jpg").write_bytes(generate(Sample("cat.jpg", 640, 480, seed=7)))

        ports = {"renderer": free_port(), "renderer_admin": free_port(), "public": free_port(), "admin": free_port()}
        inventory_file = tmp_path / "inventory.yml"
        # JSON is YAML: no YAML writer needed.
        inventory_file.write_text(json.dumps(inventory(tmp_path, wheel, consul_addr, ports, origin), indent=1))

        started = time.monotonic()
        _, first = apply_site(tmp_path, inventory_file, "first apply")
        measured["first apply"] = time.monotonic() - started
        assert first["changed"] > 0 and first["failed"] == 0

        root = tmp_path / "root"
        units = root / "etc/systemd/system"
        renderer_unit = units / "pixring-renderer.service"
        balancer_unit = units / "pixring-balancer.service"

        # What the roles wrote. systemd-analyze verify works without a running systemd
        # (it loads the unit offline); it checks syntax and that ExecStart exists.
        for unit in (renderer_unit, balancer_unit):
            check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
            assert check.returncode == 0, check.stderr
            assert "ignoring" not in check.stderr.lower(), check.stderr
        assert (units / "consul.service").exists()
        balancer_settings = unit_settings(balancer_unit)
        assert balancer_settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
        assert balancer_settings["KillSignal"] == ["SIGTERM"] and balancer_settings["Restart"] == ["on-failure"]
        assert int(balancer_settings["TimeoutStopSec"][0]) > 5  # longer than drain_timeout (+ drain_delay)

        config = load_config(config_file=str(root / "etc/pixring/pixring-balancer.toml"), environ={})
        check_sources(config)
        assert config.consul_service == SERVICE and config.consul_addr == consul_addr and config.workers == 1
        # No admin token was given: the role generated one, in a file the config names.
        token_file = root / "etc/pixring/pixring-balancer.admin-token"
        assert config.admin_token_file == str(token_file) and len(config.admin_token) >= 32
        assert token_file.stat().st_mode & 0o777 == 0o640
        assert config.admin_token not in (root / "etc/pixring/pixring-balancer.toml").read_text()

        agent = json.loads((root / "etc/consul.d/consul.json").read_text())
        assert agent["datacenter"] == "dc-test" and agent["server"] is False
        assert agent["retry_join"] == ["10.0.0.11", "10.0.0.12"] and agent["data_dir"] == str(root / "opt/consul")
        assert "bootstrap_expect" not in agent  # a client agent

        # The services, exactly as their units start them.
        venv = root / "opt/pixring/venv"
        argv, env, workdir = service_launch(renderer_unit)
        assert argv[0] == str(venv / "bin/pixring") and argv[1] == "renderer"
        assert env["PYTHONFAULTHANDLER"] == "1"
        started = time.monotonic()
        # Both units are Type=notify: as systemd does, each gets a notification socket
        # and counts as started at its READY=1.
        renderer_notify = NotifySocket(tmp_path / "renderer.notify", timeout=60)
        env["NOTIFY_SOCKET"] = renderer_notify.path
        renderer = subprocess.Popen(argv, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(renderer)
        assert unit_settings(renderer_unit)["Type"] == ["notify"]
        try:
            assert renderer_notify.hear()[:2] == [
                "READY=1", f"STATUS=listening on http://127.0.0.1:{ports['renderer']}, registered"]
        except TimeoutError:
            pytest.fail(f"no READY=1 from the renderer (exit code {renderer.poll()})")
        finally:
            renderer_notify.close()

        def registered() -> bool:
            status, _, body = http_get(f"http://{consul_addr}/v1/health/service/{SERVICE}?passing")
            return status == 200 and [e["Service"]["ID"] for e in json.loads(body)] == ["render-a"]

        wait_for("renderer registered and passing in Consul", registered, [renderer])
        status, _, body = http_get(f"http://{consul_addr}/v1/health/service/{SERVICE}")
        (entry,) = json.loads(body)
        assert entry["Service"]["Tags"] == ["e2e"] and entry["Service"]["Port"] == ports["renderer"]

        argv, env, workdir = service_launch(balancer_unit)
        assert argv[:2] == [str(venv / "bin/pixring"), "balancer"]
        # READY=1 from the balancer must mean routable.
        assert balancer_settings["Type"] == ["notify"] and balancer_settings["NotifyAccess"] == ["main"]
        balancer_notify = NotifySocket(tmp_path / "balancer.notify", timeout=60)
        env["NOTIFY_SOCKET"] = balancer_notify.path
        balancer = subprocess.Popen(argv, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(balancer)
        admin = f"http://127.0.0.1:{ports['admin']}"
        try:
            assert balancer_notify.hear()[0] == "READY=1"
        except TimeoutError:
            pytest.fail(f"no READY=1 from the balancer (exit code {balancer.poll()})")
        finally:
            balancer_notify.close()
        assert http_get(admin + "/readyz")[0] == 200
        measured["services up"] = time.monotonic() - started

        status, headers, body = http_get(f"http://127.0.0.1:{ports['public']}/photos/cat.jpg?w=100&fm=webp")
        assert status == 200, (status, body[:200])
        assert headers.get("X-Pixring-Node") == "render-a"
        image = Image.open(BytesIO(body))
        assert image.format == "WEBP" and image.size[0] == 100, (image.format, image.size)
        assert http_get(admin + "/readyz")[0] == 200
        # Where a Prometheus scrapes the renderer: its admin listener, never its image port.
        status, _, body = http_get(f"http://127.0.0.1:{ports['renderer_admin']}/metrics")
        assert status == 200 and b'pixring_renderer_renders_total{format="webp"} 1.0' in body
        assert http_get(f"http://127.0.0.1:{ports['renderer']}/metrics")[0] == 404

        # The deployed code, with its request path compiled on the host (pixring_compile).
        where = subprocess.run([str(venv / "bin/python"), "-c", "import balancer.front as f; print(f.__file__)"],
                               cwd=tmp_path, capture_output=True, text=True, env=clean_env(), timeout=60)
        assert where.returncode == 0, where.stderr
        assert where.stdout.strip().startswith(str(venv)) and where.stdout.strip().endswith(".so"), where.stdout

        # SIGTERM, as systemd's KillMode=mixed sends it: to the main process only.
        started = time.monotonic()
        for proc in (balancer, renderer):
            children = descendants(proc.pid)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            assert code == 0, f"{proc.args[:2]} exited {code}: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
            # The renderer's fork server and resource tracker leave when they see their
            # parent's pipe close, a moment after it: a hang guard, not a time limit.
            deadline = time.monotonic() + 30
            while any(alive(pid) for pid in children) and time.monotonic() < deadline:
                time.sleep(0.05)
            leftovers = [pid for pid in children if alive(pid)]
            assert not leftovers, f"{proc.args[:2]} left processes {leftovers}"
            assert children or proc is renderer, "the balancer started no worker"
        measured["stop"] = time.monotonic() - started
        # The renderer deregistered on its way out.
        status, _, body = http_get(f"http://{consul_addr}/v1/health/service/{SERVICE}")
        assert status == 200 and json.loads(body) == []

        started = time.monotonic()
        _, second = apply_site(tmp_path, inventory_file, "second apply")
        measured["second apply"] = time.monotonic() - started
        assert second["changed"] == 0, f"not idempotent: {second}"
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        print("measured: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in measured.items()))
