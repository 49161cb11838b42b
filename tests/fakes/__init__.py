"""Fake upstream LLM servers speaking the real OpenAI and Anthropic wire formats over real HTTP."""
