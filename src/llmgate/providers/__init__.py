"""Upstream LLM providers behind one typed contract (``base``) and one error vocabulary (``errors``)."""
