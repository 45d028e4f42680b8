"""Revenue reports and operational metrics (T17): SQL aggregates converted once per group."""
