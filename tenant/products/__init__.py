"""Products (T4): physical, digital or service, with a price and optional stock."""
