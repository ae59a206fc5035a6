"""Capability handlers; importing this package registers every capability."""

from mcp_server.capabilities import api_keys, tasks

__all__ = ["api_keys", "tasks"]
