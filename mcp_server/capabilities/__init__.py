"""Capability handlers; importing this package registers every capability."""

from mcp_server.capabilities import api_keys, audit, deployments, sandboxes, tasks, templates, workflows

__all__ = ["api_keys", "audit", "deployments", "sandboxes", "tasks", "templates", "workflows"]
