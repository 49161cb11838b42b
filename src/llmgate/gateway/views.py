"""The /v1 endpoints (placeholder until the views land)."""


def init_app(app):
    pass
