"""fairforge.evaluate (the `evaluate/` folder)."""
