"""imgix's parameter catalogue, which the schema's table is checked against.

It lies in ``../shared/reference`` beside the checkout (DESIGN.md): imgix's, not ours to
copy in. In CI (``$CI`` set, as ``.ci/run`` and most CI systems do) it must be there and
a missing one fails the checks; elsewhere they are skipped, and the session's header and
the skip reason say so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

__all__ = ["CATALOGUE", "catalogue_status", "load_catalogue"]

CATALOGUE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "imgix-parameters-11.35.0.json"


def catalogue_status() -> str:
    if CATALOGUE.exists():
        return f"imgix catalogue: {CATALOGUE}"
    return (f"imgix catalogue: MISSING ({CATALOGUE}): the schema's catalogue checks "
            + ("FAIL (CI is set)" if os.environ.get("CI") else "are SKIPPED"))


def load_catalogue() -> dict:
    if not CATALOGUE.exists():
        message = (f"imgix catalogue not found at {CATALOGUE} (../shared/reference beside the checkout): "
                   "pixring/schema.py's table is not checked against it")
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must provide it", pytrace=False)
        pytest.skip(message)
    return json.loads(CATALOGUE.read_text())
