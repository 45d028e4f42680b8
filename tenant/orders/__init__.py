"""Orders/invoices (T5): items, totals, the 14-state lifecycle, inventory reservations (T7)."""
