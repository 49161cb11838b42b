"""The gateway core: format translation and the upstream exchange the ``/v1`` endpoints call."""
