"""The dashboard's pages, one module per page group; each adds its routes to ``blueprint.bp``."""
