"""Payment attempts and checkout (T7), the events that settle them, cash payments."""
