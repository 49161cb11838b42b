"""The gateway core: format translation and the upstream exchange the ``/v1`` endpoints call."""


def init_app(app):
    """Load the model catalog, set up deployment health and register the ``/v1`` endpoints."""
    from llmgate.gateway import catalog, health, views

    catalog.init_app(app)
    health.init_app(app)
    views.init_app(app)
