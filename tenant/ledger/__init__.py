"""Double-entry ledger per tenant (T22): every money movement posts balanced entries."""
