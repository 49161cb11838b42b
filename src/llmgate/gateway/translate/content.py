"""Message content parts: text and images (OpenAI ``image_url`` ⇄ Anthropic ``image`` sources)."""
from __future__ import annotations

from typing import Any

from llmgate.providers.errors import BadRequestError


def text_of(content: Any) -> str:
    """All text of a content value (a string, or a list of text parts/blocks), joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def image_to_anthropic(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url") or {}
    url = image.get("url", "") if isinstance(image, dict) else str(image)
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0]
        if ";base64" not in header or not data:
            raise BadRequestError("image data URLs must be base64 (data:<type>;base64,<data>)")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequestError("image_url.url must be an http(s) URL or a base64 data URL")


def image_to_openai(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise BadRequestError(f"image source type {source.get('type')!r} cannot be sent to an OpenAI-format model")


def parts_to_anthropic(content: Any) -> str | list[dict[str, Any]]:
    """An OpenAI user content value as Anthropic content (strings stay strings)."""
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(image_to_anthropic(part))
        else:
            raise BadRequestError(f"content part {kind!r} cannot be sent to an Anthropic model")
    return blocks


def blocks_to_openai(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic text/image blocks as OpenAI content parts."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(image_to_openai(block))
        else:
            raise BadRequestError(f"content block {kind!r} cannot be sent to an OpenAI-format model")
    return parts
