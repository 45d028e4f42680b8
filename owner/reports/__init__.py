"""The owner's platform report (O7): every tenant's paid volume, normalized."""
