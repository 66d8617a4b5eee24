"""The manual's shape: its generated references match the code, its links lead somewhere, and
the README stays a front door.

Regenerate the references with `python -m balancer.reference --update`. The commands the
documents show are checked by ``test_docs_commands.py``; the conventions are in
docs/README.md, "Writing these documents".
"""

import re

import pytest

from balancer.reference import DOCUMENTS, REFERENCES, config_reference, metrics_reference, update
from tests.docs import ROOT, anchors, documents, fenced_blocks, links

README = ROOT / "README.md"
# The README is the front door: what pixring is, the quick start, a tour, the commands and the
# manual's contents. Detail belongs in docs/.
README_MAX_LINES = 200
SHELL_INFO = {"sh", "bash", "shell", "console", "zsh"}


def _between(text: str, name: str) -> str:
    start = f"<!-- {name}:start -->\n"
    end = f"\n<!-- {name}:end -->"
    assert start in text and end in text, f"the {name} markers are missing"
    return text.split(start, 1)[1].split(end, 1)[0]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_each_reference_matches_the_code(name):
    path = ROOT / DOCUMENTS[name]
    assert _between(path.read_text(), name) == REFERENCES[name](), (
        f"{DOCUMENTS[name]}'s {name} is out of date: run `python -m balancer.reference --update`"
    )


def test_the_renderers_reference_matches_its_table():
    # Generated at the composition root, the one place that joins the renderer's fields and
    # discovery's registration fields (balancer.reference may import neither).
    from pixring.cli.command import _renderer_table

    table = _renderer_table().reference(reload_column=True)
    assert _between((ROOT / "docs/renderer.md").read_text(), "renderer-config-reference") == table, (
        "docs/renderer.md's renderer-config-reference is out of date; the table to put between its markers:\n"
        + table
    )


def test_the_renderers_metrics_are_in_the_metrics_reference():
    from renderer.metrics import metrics_reference

    table = metrics_reference()
    assert _between((ROOT / "docs/metrics.md").read_text(), "renderer-metrics-reference") == table, (
        "docs/metrics.md's renderer-metrics-reference is out of date; the table to put between its markers:\n" + table
    )


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_each_reference_lives_in_one_document(name):
    carriers = [path.relative_to(ROOT).as_posix() for path in documents() if f"<!-- {name}:start -->" in path.read_text()]
    assert carriers == [DOCUMENTS[name]]


def test_update_rewrites_only_between_the_markers_and_refuses_a_text_without_them():
    text = "intro\n<!-- config-reference:start -->\nSTALE-TABLE\n<!-- config-reference:end -->\nmiddle\n" \
           "<!-- metrics-reference:start --><!-- metrics-reference:end -->\ntail\n"
    updated = update(text)
    assert updated.startswith("intro\n") and "\nmiddle\n" in updated and updated.endswith("\ntail\n")
    assert "STALE-TABLE" not in updated and config_reference() in updated and metrics_reference() in updated
    assert update(updated) == updated
    alone = update("a\n<!-- metrics-reference:start -->\n<!-- metrics-reference:end -->\nb\n")
    assert metrics_reference() in alone and config_reference() not in alone
    with pytest.raises(ValueError, match="no reference markers"):
        update("nothing to generate here\n")
    with pytest.raises(ValueError, match="config-reference end marker"):
        update("<!-- config-reference:start -->\ncut short\n")


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(path):
    broken = []
    for line, target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{path.name}:{line}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{path.name}:{line}: {target} (no such heading in {linked.name})")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shell_block_is_runnable_or_plain_text(path):
    """A shell block is either ``sh runnable`` (its commands are checked) or ``text``."""
    bare = [block.where for block in fenced_blocks(path)
            if block.info.split()[:1] and block.info.split()[0] in SHELL_INFO and block.info != "sh runnable"]
    assert not bare, f"mark these `sh runnable` (checked) or `text` (not run): {bare}"


def test_every_document_is_in_the_manuals_contents():
    index = (ROOT / "docs" / "README.md").read_text()
    front = README.read_text()
    for path in documents()[1:]:
        if path.name == "README.md":
            continue
        assert f"]({path.name})" in index, f"docs/README.md does not list {path.name}"
        assert f"](docs/{path.name})" in front, f"README.md's manual does not list {path.name}"


def test_the_readme_is_a_front_door_with_the_two_command_quick_start():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, (
        f"README.md has {len(text.splitlines())} lines: keep it a front door, move the detail into docs/"
    )
    runnable = "".join(block.text for block in fenced_blocks(README) if block.info == "sh runnable")
    assert "make run\n" in runnable and "make test\n" in runnable


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_toml_example_is_a_config_the_balancer_loads(path, tmp_path):
    from balancer.config import load_config

    for number, block in enumerate(b for b in fenced_blocks(path) if b.info == "toml"):
        config = tmp_path / f"example-{number}.toml"
        config.write_text(block.text)
        load_config(config_file=str(config), environ={}, flags={})  # raises ConfigError naming the field
