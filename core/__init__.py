"""The kernel every other package may import; it imports none of them."""
