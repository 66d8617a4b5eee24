"""Golden images of the reference renderer: small PNGs of crops and adjustments.

``cases.py`` lists what is rendered, ``compare.py`` says how close is close enough, and
``python -m tests.golden.regenerate`` is the only thing that ever writes the PNGs.
"""
