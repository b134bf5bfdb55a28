"""fairforge.generate (the `generate/` folder)."""
