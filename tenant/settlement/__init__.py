"""Settlement: what follows when money moves (see :mod:`tenant.settlement.effects`)."""
