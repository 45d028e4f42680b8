"""The platform owner's side: catalog, tenants and clusters, keys, FX, reports."""
