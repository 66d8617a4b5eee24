"""The README's references are generated from the code; this keeps them in step.

Regenerate with `python -m balancer.reference --update README.md`.
"""

from pathlib import Path

import pytest

from balancer.reference import config_reference, metrics_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def _between(text: str, name: str) -> str:
    start = f"<!-- {name}:start -->\n"
    end = f"\n<!-- {name}:end -->"
    assert start in text and end in text, f"README lacks the {name} markers"
    return text.split(start, 1)[1].split(end, 1)[0]


@pytest.mark.parametrize("name, generate", [("config-reference", config_reference), ("metrics-reference", metrics_reference)])
def test_readme_reference_matches_the_code(name, generate):
    assert _between(README.read_text(), name) == generate(), (
        f"README's {name} is out of date: run `python -m balancer.reference --update README.md`"
    )


def test_quick_start_is_the_two_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text


def test_update_rewrites_only_between_the_markers_and_refuses_missing_ones():
    from balancer.reference import update

    text = "intro\n<!-- config-reference:start -->\nSTALE-TABLE\n<!-- config-reference:end -->\nmiddle\n" \
           "<!-- metrics-reference:start --><!-- metrics-reference:end -->\ntail\n"
    updated = update(text)
    assert updated.startswith("intro\n") and "\nmiddle\n" in updated and updated.endswith("\ntail\n")
    assert "STALE-TABLE" not in updated and config_reference() in updated and metrics_reference() in updated
    assert update(updated) == updated
    with pytest.raises(ValueError, match="metrics-reference"):
        update("<!-- config-reference:start --><!-- config-reference:end -->")
