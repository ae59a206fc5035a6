"""Host-based proxy to workloads' own origins (sandbox URLs; deployments reuse ``forward``)."""
