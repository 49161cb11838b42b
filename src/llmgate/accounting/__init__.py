"""Usage ledger, pricing, budgets, rate limits and reports."""
