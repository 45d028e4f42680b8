"""Per-tenant settings (T20): reservation TTL, unpaid auto-cancel hours, tax rate."""
