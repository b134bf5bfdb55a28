"""fairforge.balance (the `balance/` folder)."""
