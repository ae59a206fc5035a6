"""ValidatingAdmissionPolicies, evaluated by the fake API server with a CEL interpreter (``celpy``).

Give ``AdmissionPolicies`` the policy and binding documents (``deploy/kubernetes/admission.yaml``)
and the user every HTTP request is taken to come from. For each write that a policy's
``matchConstraints`` and ``matchConditions`` select, every validation must evaluate to true; a
false one, or one that fails to evaluate (``failurePolicy: Fail``), denies the request with its
message, as ``kube-apiserver`` does (422 Invalid). Writes of the simulated controllers bypass
the HTTP layer and so, like the real controllers' own identities, are not subject to it.

Only what kubegate's policy uses is supported: ``resourceRules`` without names, ``matchConditions``,
``validations`` and the variables ``object``, ``oldObject``, ``request`` and ``namespaceObject``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import celpy
from celpy.adapter import json_to_cel

from k8s.sim.store import ApiError, Obj

OPERATIONS = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE"}


@dataclass(frozen=True, slots=True)
class Write:
    verb: str
    group: str
    version: str
    resource: str
    namespace: str | None
    name: str
    obj: Obj | None
    old: Obj | None
    namespace_obj: Obj | None


@dataclass
class _Policy:
    name: str
    rules: set[tuple[str, str, str]]
    conditions: list[Any]
    validations: list[tuple[Any, str]]
    denied: list[str] = field(default_factory=list)


class AdmissionPolicies:
    def __init__(self, documents: list[Obj], user: str) -> None:
        self.user = user
        self.denials: list[str] = []
        bound = {d["spec"]["policyName"] for d in documents if d["kind"] == "ValidatingAdmissionPolicyBinding"
                 and "Deny" in d["spec"]["validationActions"]}
        env = celpy.Environment()
        self._policies = [self._compile(env, d) for d in documents
                          if d["kind"] == "ValidatingAdmissionPolicy" and d["metadata"]["name"] in bound]

    @staticmethod
    def _compile(env: celpy.Environment, doc: Obj) -> _Policy:
        spec = doc["spec"]
        rules = {(group, resource, operation) for rule in spec["matchConstraints"]["resourceRules"]
                 for group in rule["apiGroups"] for resource in rule["resources"] for operation in rule["operations"]}
        def program(text: str) -> Any:
            return env.program(env.compile(text))
        return _Policy(doc["metadata"]["name"], rules,
                       [program(c["expression"]) for c in spec.get("matchConditions") or []],
                       [(program(v["expression"]), v.get("message", v["expression"])) for v in spec["validations"]])

    def admit(self, write: Write) -> None:
        """Raise 422 when a bound policy that selects ``write`` refuses it."""
        operation = OPERATIONS.get(write.verb)
        if operation is None:
            return
        activation = {
            "object": json_to_cel(write.obj), "oldObject": json_to_cel(write.old),
            "namespaceObject": json_to_cel(write.namespace_obj),
            "request": json_to_cel({
                "operation": operation, "name": write.name, "namespace": write.namespace or "",
                "resource": {"group": write.group, "version": write.version, "resource": write.resource},
                "userInfo": {"username": self.user}}),
        }
        for policy in self._policies:
            if (write.group, write.resource, operation) not in policy.rules:
                continue
            if not all(_true(c, activation) for c in policy.conditions):
                continue
            for program, message in policy.validations:
                if not _true(program, activation):
                    self.denials.append(f"{write.verb} {write.resource} {write.namespace or ''}/{write.name}: "
                                        f"{message}")
                    raise ApiError(422, "Invalid", f"ValidatingAdmissionPolicy '{policy.name}' denied request: "
                                                   f"{message}")


def _true(program: Any, activation: dict[str, Any]) -> bool:
    try:
        result = program.evaluate(activation)
    except Exception:  # an expression that cannot be evaluated fails closed (failurePolicy: Fail)
        return False
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)
