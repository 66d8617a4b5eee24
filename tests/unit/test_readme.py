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
