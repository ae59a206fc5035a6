"""THE table of documented REST endpoints, each mapped onto one registry capability.

A row says: method and path (path parameters in braces are input fields by their JSON name),
the tool that answers, where the other inputs come from (``query`` string or JSON ``body``),
and the success status. Routes, OpenAPI and the coverage test are all generated from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Source = Literal["query", "body"]


@dataclass(frozen=True, slots=True)
class RestRoute:
    method: Literal["GET", "POST", "PATCH", "DELETE"]
    path: str
    tool: str
    source: Source = "query"
    status: int = 200

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{(\w+)\}", self.path))


ROUTES: tuple[RestRoute, ...] = (
    RestRoute("GET", "/api/api-keys", "api_keys_list"),
    RestRoute("POST", "/api/api-keys", "api_keys_create", source="body", status=201),
    RestRoute("DELETE", "/api/api-keys/{keyId}", "api_keys_revoke"),
    RestRoute("GET", "/api/tasks", "tasks_list"),
    RestRoute("POST", "/api/tasks", "tasks_create", source="body", status=201),
    RestRoute("GET", "/api/tasks/{taskId}", "tasks_get"),
    RestRoute("DELETE", "/api/tasks/{taskId}", "tasks_delete"),
    RestRoute("GET", "/api/workflows", "workflows_list"),
    RestRoute("POST", "/api/workflows", "workflows_create", source="body", status=201),
    RestRoute("GET", "/api/workflows/{workflowId}", "workflows_get"),
    RestRoute("DELETE", "/api/workflows/{workflowId}", "workflows_delete"),
    RestRoute("GET", "/api/sandboxes", "sandboxes_list"),
    RestRoute("POST", "/api/sandboxes", "sandboxes_create", source="body", status=201),
    RestRoute("GET", "/api/sandboxes/{sandboxId}", "sandboxes_get"),
    RestRoute("DELETE", "/api/sandboxes/{sandboxId}", "sandboxes_delete"),
    RestRoute("POST", "/api/sandboxes/{sandboxId}/exec", "sandboxes_exec", source="body"),
    RestRoute("GET", "/api/sandboxes/{sandboxId}/files", "sandboxes_read_file"),
    RestRoute("POST", "/api/sandboxes/{sandboxId}/files", "sandboxes_write_file", source="body"),
    RestRoute("POST", "/api/sandboxes/{sandboxId}/extend", "sandboxes_extend", source="body"),
    RestRoute("GET", "/api/audit", "audit_list"),
    RestRoute("GET", "/api/templates", "templates_list"),
    RestRoute("POST", "/api/templates", "templates_create", source="body", status=201),
    RestRoute("GET", "/api/templates/{name}", "templates_get"),
    RestRoute("PATCH", "/api/templates/{name}", "templates_update", source="body"),
    RestRoute("DELETE", "/api/templates/{name}", "templates_delete"),
    # ``status`` before ``{name}``: matched first (and no generated name is ``status``).
    RestRoute("GET", "/api/deployments/status", "deployments_status"),
    RestRoute("GET", "/api/deployments", "deployments_list"),
    RestRoute("POST", "/api/deployments", "deployments_create", source="body", status=201),
    RestRoute("GET", "/api/deployments/{name}", "deployments_get"),
    RestRoute("PATCH", "/api/deployments/{name}", "deployments_update", source="body"),
    RestRoute("DELETE", "/api/deployments/{name}", "deployments_delete"),
    RestRoute("POST", "/api/deployments/{name}/scale", "deployments_scale", source="body"),
    RestRoute("GET", "/api/deployments/{name}/logs", "deployments_logs"),
    RestRoute("GET", "/api/deployments/{name}/metrics", "deployments_metrics"),
)
