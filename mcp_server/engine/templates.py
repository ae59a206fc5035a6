"""Template contents: defaults, partial updates, and the templates file read at start.

``KUBEGATE_TEMPLATES_FILE`` is applied at every start as an upsert of the templates it names:
each is created, or given the file's content as a new version when it differs (the file wins
over an API edit of a template it names); templates it does not name, those made through the
API included, are left alone. A file that cannot be read or fails validation stops the start
with one line naming the file, the template and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mcp_server.errors import KubegateError, ValidationFailed
from mcp_server.models.templates import EnvVarIn, TemplateCreate, TemplateFields, check_env_names, check_limits
from mcp_server.store.templates import EnvVar, Template, TemplateSpec, TemplateStore

DEFAULTS = TemplateSpec(
    name="", display_name="", description="", category="general", image="", port=8080, cpu_request="100m",
    cpu_limit="500m", memory_request="128Mi", memory_limit="512Mi", health_check_path="/", enabled=True,
    command=None, env=(),
)
_NULLABLE = frozenset({"command"})


def _env(given: Sequence[EnvVarIn], current: Sequence[EnvVar]) -> tuple[EnvVar, ...]:
    """The env of a new version; a variable given without a value keeps its current one (and its secrecy)."""
    check_env_names(list(given))
    kept = {var.name: var for var in current}
    out = []
    for index, var in enumerate(given):
        if var.value is not None:
            out.append(EnvVar(var.name, var.value, var.secret))
        elif var.name in kept:
            out.append(EnvVar(var.name, kept[var.name].value, var.secret or kept[var.name].secret))
        else:
            raise ValidationFailed("required (only a variable the template already has may leave it out)",
                                   field=f"envVars.{index}.value")
    return tuple(out)


def apply_fields(base: TemplateSpec, fields: TemplateFields) -> TemplateSpec:
    """``base`` with every field given in ``fields`` set; the result is checked as a whole."""
    changes: dict[str, Any] = {}
    for field in fields.model_fields_set - {"name"}:
        value = getattr(fields, field)
        if value is None and field not in _NULLABLE:
            raise ValidationFailed("must not be null", field=TemplateFields.model_fields[field].alias)
        if field == "env_vars":
            changes["env"] = _env(value, base.env)
        elif field == "command":
            changes["command"] = tuple(value) if value is not None else None
        else:
            changes[field] = value
    spec = dataclasses.replace(base, **changes)
    check_limits(spec.cpu_request, spec.cpu_limit, spec.memory_request, spec.memory_limit)
    return spec


def new_spec(args: TemplateCreate) -> TemplateSpec:
    """A template from its create arguments, with the documented defaults for what was left out."""
    base = dataclasses.replace(DEFAULTS, name=args.name, display_name=args.display_name or args.name)
    return apply_fields(base, args)


class TemplatesFileError(KubegateError):
    """A templates file that cannot be used; the message is one line naming the file and field."""


def read_templates_file(path: Path) -> list[TemplateSpec]:
    """The templates a YAML file defines (``templates: [{name: ..., image: ...}, ...]``)."""
    import yaml  # only where a templates file is set: ~13 ms of start-up otherwise

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplatesFileError(f"KUBEGATE_TEMPLATES_FILE {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TemplatesFileError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise TemplatesFileError(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(document, dict) or not isinstance(document.get("templates"), list):
        raise TemplatesFileError(f"{path}: must be a mapping with a 'templates' list")
    specs: list[TemplateSpec] = []
    for index, item in enumerate(document["templates"]):
        spec = _spec(path, index, item)
        if any(s.name == spec.name for s in specs):
            raise TemplatesFileError(f"{path}: templates[{index}] ({spec.name}): name appears twice")
        specs.append(spec)
    return specs


def _spec(path: Path, index: int, item: Any) -> TemplateSpec:
    label = f"templates[{index}]"
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        label += f" ({item['name']})"
    try:
        return new_spec(TemplateCreate.model_validate(item))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]  # never the input: it may be a secret
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        problem = f"{'.'.join(str(part) for part in first['loc'])}: {message}"
    except ValidationFailed as exc:
        problem = exc.message
    raise TemplatesFileError(f"{path}: {label}: {problem}".replace("\n", " "))


async def apply_templates(store: TemplateStore, specs: Sequence[TemplateSpec]) -> list[Template]:
    """Upsert each template; unchanged ones are not written (so no new version)."""
    return [await store.upsert(spec, "file") for spec in specs]
