"""Paymesh benchmark harness: ``python -m bench`` (``make bench``).

One command, one table. Every figure is printed beside a reference measured in the same
run on the same machine (a plain Litestar JSON endpoint served with the API's uvicorn
settings, and ``pgbench`` on the same Postgres), with the ratio, the target from the
issues and a verdict.

Layout:

- :mod:`bench.cli`         options, orchestration, Ctrl-C/error cleanup
- :mod:`bench.registry`    the row registry (add later rows here; see its docstring)
- :mod:`bench.context`     what a row gets: servers, API client helpers, load generator
- :mod:`bench.stack`       embedded/external Postgres + Redis, the API subprocess
- :mod:`bench.load`        ``wrk`` (Lua scripts) or the bounded asyncio fallback
- :mod:`bench.pg`          ``pgbench``, SQL helpers, the connection/RSS monitor
- :mod:`bench.report`      the table and the JSON file
- :mod:`bench.rows`        one module per row
- :mod:`bench.reference_app` the plain Litestar reference app
"""
