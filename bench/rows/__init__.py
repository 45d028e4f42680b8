"""Bench rows. Importing a module registers its rows; import order is run order.

Later rows (see ``bench.registry.PLANNED``) go here as new modules.
"""

# ruff: noqa: I001  (import order is run order)
from bench.rows import references, provisioning, spread  # noqa: F401
from bench.rows import order_checkout, webhook_ingest, worker_processing  # noqa: F401
from bench.rows import outgoing_delivery  # noqa: F401
from bench.rows import revenue_report  # noqa: F401
