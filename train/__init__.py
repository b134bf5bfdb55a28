"""fairforge.train (the `train/` folder)."""
