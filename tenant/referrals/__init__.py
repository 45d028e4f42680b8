"""Referral codes, commissions and tiers (T14, SPEC 3a; docs/referrals.md)."""
