"""Server-rendered pages: the customer's payment page (T8). Plain HTML forms, no JS."""
