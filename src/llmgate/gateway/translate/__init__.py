"""Pure translation between the OpenAI Chat Completions and Anthropic Messages wire formats (dicts and SSE bytes)."""
