"""kubegate: an MCP-first gateway to run work on Kubernetes."""

__version__ = "0.1.0"
