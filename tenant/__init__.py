"""A tenant's own database: provider configs, products, orders, payments, ledger, …"""
