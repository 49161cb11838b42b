"""Outgoing webhooks: refuse URLs that point inside our network, sign bodies, POST them.

Shared by budget alerts (accounting) and batch completion (batches). A URL is safe when it is
http(s) and every address its host resolves to is public, unless the host (name, address or
CIDR) is in ``WEBHOOK_ALLOWLIST``.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from typing import Any, Iterable
from urllib.parse import urlsplit

import requests

from .errors import ValidationError

SIGNATURE_HEADER = "X-LLMGate-Signature"


def _allowed(host: str, addresses: Iterable[ipaddress._BaseAddress], allowlist: Iterable[str]) -> bool:
    for entry in allowlist:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(address in network for address in addresses):
            return True
    return False


def _public(address: ipaddress._BaseAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allowlist: Iterable[str] = (), resolve: bool = True, field: str = "url") -> None:
    """Raise ``ValidationError`` (naming ``field``) unless ``url`` is a safe webhook target."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Webhook URL must be an absolute http(s) URL.", details={field: "not an http(s) URL"})
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                       proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            raise ValidationError("Webhook host does not resolve.", details={field: f"{host} does not resolve"})
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    allowlist = list(allowlist)
    if _allowed(host, addresses, allowlist):
        return
    if not all(_public(a) for a in addresses):
        raise ValidationError("Webhook URL points to a private or reserved address.",
                              details={field: f"{host} is not a public address (see LLMGATE_WEBHOOK_ALLOWLIST)"})


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    return hmac.compare_digest(sign(body, secret), signature or "")


def post(url: str, payload: dict[str, Any], *, secret: str, allowlist: Iterable[str] = (),
         timeout: float = 5.0, event: str = "") -> int:
    """POST ``payload`` as signed JSON; returns the status. Redirects are not followed (they could
    lead anywhere). The check runs again here: DNS may have changed since the URL was accepted."""
    check_url(url, allowlist=allowlist)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret),
               "User-Agent": "llmgate-webhook"}
    if event:
        headers["X-LLMGate-Event"] = event
    response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    return response.status_code


def secret_for(config: dict[str, Any]) -> str:
    return config.get("WEBHOOK_SECRET") or config["SECRET_KEY"]
