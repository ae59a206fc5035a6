"""The HTTP edge: one pass over every request before it reaches a door (see ``pipeline``).

``scope`` says what the edge leaves in the ASGI scope and is the one way to read it back;
``calls`` builds the handler ``Context`` for every door; ``logs`` and ``probes`` (with
``mcp_server.observability``, the metrics every layer records into)
make the gateway observable (``/metrics``, ``/readyz``, request ids, JSON logs).
"""
