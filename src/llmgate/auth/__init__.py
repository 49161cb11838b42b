"""Users, passwords, JWT sessions and API keys."""
