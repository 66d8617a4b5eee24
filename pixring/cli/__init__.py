"""The composition root: the one place that wires balancer, discovery and renderer together.

``command`` is the ``pixring`` command, ``worker`` a balancer worker process, ``sources``
the choice of a balancer's membership source and ``up`` the local cluster.
``tests/unit/test_import_lines.py`` checks that no other package imports across the lines.
Nothing is imported here, so that ``python -m pixring.cli`` reaches ``__main__``, where a
Ctrl-C during the imports is handled, as soon as Python runs.
"""
