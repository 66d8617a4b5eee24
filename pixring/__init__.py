"""pixring: a consistent-hashing load-balancing tier for image render fleets."""

__version__ = "0.1.0"
