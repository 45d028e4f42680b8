"""Coupons (T13): percent or fixed discounts, redemptions reserved with their orders, and
the sync of a linked provider-side discount (see ``docs/coupons.md``)."""
