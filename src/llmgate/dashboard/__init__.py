"""Server-rendered pages under /dashboard."""
