"""The renderer's configuration (renderer/config.py): layers, messages, reload, the role's copy."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest
import yaml

from pixring.cli.command import build_parser
from pixring.config import Address, ConfigError, Loader
from renderer.app import Renderer
from renderer.cache import ResultCache
from renderer.config import FIELDS, TABLE, settings_from
from renderer.origin import LocalOrigin
from renderer.reload import RELOADED, apply
from renderer.settings import RendererSettings
from renderer.workers import RenderPool

ROLE_VARS = Path(__file__).resolve().parents[2] / "ansible/roles/renderer/vars/main.yml"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    TABLE.add_arguments(parser)
    return parser.parse_args(argv)


def test_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "renderer.toml"
    path.write_text('listen = "0.0.0.0:9100"\ncache_bytes = "64M"\nrender_queue = 3\naccess_log = false\n'
                    'render_timeout = 5\n')
    environ = {"PIXRING_RENDERER_CACHE_BYTES": "32M", "PIXRING_RENDERER_RENDER_QUEUE": "2"}
    values = Loader(TABLE, parse("--config", str(path), "--render-queue", "1"), environ).load()
    assert values["listen"] == Address("0.0.0.0", 9100)  # file
    assert values["cache_bytes"] == 32 * 1024**2  # environment beats file
    assert values["render_queue"] == 1  # flag beats environment
    assert values["access_log"] is False and values["render_timeout"] == 5.0
    assert values["origin"] is None and settings_from(values).origin == Path("var/samples")


def test_the_config_file_may_come_from_the_environment(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('origin = "https://images.example.com/base/"\n')
    values = Loader(TABLE, parse(), {"PIXRING_RENDERER_CONFIG": str(path)}).load()
    assert values["origin"] == "https://images.example.com/base/"


def test_switches_are_bare_flags_with_a_negation():
    assert TABLE.given(parse("--no-access-log", "--samples")) == {"access_log": False, "samples": True}
    assert Loader(TABLE, parse("--no-access-log"), {}).load()["access_log"] is False


@pytest.mark.parametrize("where, given, message", [
    ("flag", ["--render-workers", "0"], "--render-workers: '0' must be at least 1"),
    ("flag", ["--cache-bytes", "lots"], "--cache-bytes: 'lots' is not a size in bytes"),
    ("flag", ["--origin", "ftp://example.com/"], "--origin: 'ftp://example.com/': only http:// and https://"),
    ("env", {"PIXRING_RENDERER_RENDER_TIMEOUT": "0"}, "PIXRING_RENDERER_RENDER_TIMEOUT: '0' must be a positive"),
    ("env", {"PIXRING_RENDERER_CACHE_CONTROL": "a\r\nSet-Cookie: x"}, "PIXRING_RENDERER_CACHE_CONTROL"),
    ("file", "max_output_pixels = -1\n", "max_output_pixels: -1 must be at least 1"),
    ("file", "cache_size = 1\n", "unknown field 'cache_size'"),
])
def test_a_bad_value_is_refused_naming_the_field_as_its_layer_spells_it(tmp_path, where, given, message):
    args, environ = parse(), {}
    if where == "flag":
        args = parse(*given)
    elif where == "env":
        environ = given
    else:
        path = tmp_path / "bad.toml"
        path.write_text(given)
        args = parse("--config", str(path))
    with pytest.raises(ConfigError) as caught:
        Loader(TABLE, args, environ).load()
    assert message in str(caught.value)


def test_every_app_field_is_a_setting_and_the_reloaded_ones_are_named():
    settings = {name for name in RendererSettings.__dataclass_fields__}
    assert {f.name for f in FIELDS} - {"listen", "admin", "samples", "shutdown_timeout"} <= settings
    assert set(RELOADED) == {"render_queue", "cache_bytes", "disk_cache_bytes", "cache_control",
                             "max_source_bytes", "max_output_pixels", "max_output_bytes", "render_timeout"}


def test_the_roles_reload_list_is_the_products():
    """The renderer role reloads (SIGHUP) for these fields and restarts for the others:
    the list must be the product's, or a change would be reloaded and not applied."""
    role = yaml.safe_load(ROLE_VARS.read_text())
    assert sorted(role["renderer_reload_fields"]) == sorted(RELOADED)


def test_pixring_renderer_reads_discoverys_registration_fields_under_the_renderers_prefix(capsys, tmp_path,
                                                                                         monkeypatch):
    origin = tmp_path / "images"
    origin.mkdir()
    args = build_parser().parse_args(["renderer", "--origin", str(origin), "--consul", "--consul-tag", "a",
                                      "--consul-tag", "b", "--print-config"])
    monkeypatch.setenv("PIXRING_RENDERER_CONSUL_SERVICE", "thumbs")
    assert args.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["consul"] is True and printed["consul_service"] == "thumbs"
    assert printed["consul_tag"] == ["a", "b"] and printed["origin"] == str(origin)
    assert printed["cache_bytes"] == 128 * 1024**2


def test_an_invalid_config_stops_pixring_renderer_with_exit_2_naming_the_field(capsys, tmp_path):
    args = build_parser().parse_args(["renderer", "--origin", str(tmp_path), "--weight", "-1", "--print-config"])
    assert args.run(args) == 2
    assert "--weight: '-1' must be a finite number >= 0" in capsys.readouterr().err


def test_a_reload_applies_the_reloadable_fields_and_keeps_the_others(tmp_path):
    running = RendererSettings(origin=tmp_path, pool_kind="thread", render_workers=1, cache_bytes=1 << 20,
                               render_queue=4, render_timeout=30.0, max_source_bytes=1000)
    pool = RenderPool(1, 4, kind="thread")
    renderer = Renderer(settings=running, origin=LocalOrigin(tmp_path, 1000), cache=ResultCache(1 << 20), pool=pool)
    try:
        fresh = RendererSettings(origin=tmp_path / "elsewhere", pool_kind="thread", render_workers=3,
                                 cache_bytes=1 << 10, render_queue=0, render_timeout=2.0, max_source_bytes=500)
        applied = asyncio.run(apply(renderer, fresh))
    finally:
        pool.shutdown(True)
    assert set(applied) == {"cache_bytes", "render_queue", "render_timeout", "max_source_bytes"}
    assert renderer.cache.max_bytes == 1 << 10 and pool.capacity == 1 and renderer.origin.max_bytes == 500
    # What the running process cannot change stays as it started.
    assert renderer.settings.origin == tmp_path and renderer.settings.render_workers == 1
    assert renderer.settings.render_timeout == 2.0
