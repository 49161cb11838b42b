"""Files, OpenAI-style batches and tabular batches run by RQ workers."""
