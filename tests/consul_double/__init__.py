"""A faithful double of the Consul agent's HTTP API, for tests (no Consul binary here).

``serve()`` runs it inside a test's event loop; ``python -m tests.consul_double --port N``
runs it as a process. ``app`` has the routes and test controls, ``state`` the catalog,
indexes and check runners, ``model`` the request bodies. Tests that need no fault
control run against a real agent instead when ``CONSUL_HTTP_ADDR`` is set
(``tests/conftest_consul.py``), so the double cannot drift from Consul unnoticed.
"""

from tests.consul_double.app import Faults, RunningDouble, make_app, serve
from tests.consul_double.state import DoubleConfig

__all__ = ["DoubleConfig", "Faults", "RunningDouble", "make_app", "serve"]
