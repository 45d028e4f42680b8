"""Dramatiq workers and the scheduler. ``workers.broker`` is imported before any actor."""
