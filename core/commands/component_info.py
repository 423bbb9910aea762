"""What ``dreamset plugins KEY`` shows about one component: where it comes from, its options (from
its pydantic ``Options`` model: name, type, default, bounds, description) and its card (the class
docstring and the docstring of the component's file). Importing this module does not import torch;
building the info imports the component's module (plugins keep torch out of module level)."""
from __future__ import annotations

import inspect
import sys
from typing import Any

_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "multiple_of": "multiple of", "min_length": "min length",
           "max_length": "max length"}


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def option_rows(model) -> list[dict[str, Any]]:
    """One dict per field of a pydantic options model: name, type, default, bounds, description."""
    from pydantic_core import PydanticUndefined

    rows = []
    for name, field in model.model_fields.items():
        bounds = []
        for item in field.metadata:
            for attr, symbol in _BOUNDS.items():
                value = getattr(item, attr, None)
                if value is not None:
                    bounds.append(f"{symbol} {value:g}" if isinstance(value, float) else f"{symbol} {value}")
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "(required)"
        elif field.default_factory is not None:
            default = repr(field.default_factory())
        else:
            default = repr(field.default)
        rows.append({"name": name, "type": _type_name(field.annotation), "default": default,
                     "bounds": ", ".join(bounds), "description": field.description or ""})
    return rows


def component_info(spec) -> dict[str, Any]:
    """Everything ``dreamset plugins KEY`` shows, JSON-serialisable."""
    cls = spec.load()
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    return {
        "key": spec.key,
        "aliases": [f"{spec.kind}:{a}" for a in spec.aliases],
        "plugin": spec.plugin,
        "distribution": spec.distribution,
        "version": spec.version,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "description": spec.summary,
        "options": option_rows(spec.options_model()),
        "docstring": inspect.cleandoc(cls.__doc__ or ""),
        "module_docstring": inspect.cleandoc(getattr(module, "__doc__", None) or ""),
    }


def print_component_info(info: dict[str, Any], console) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{info['key']}[/]  {escape(info['description'])}")
    console.print(f"plugin {info['plugin']} · {info['distribution']} {info['version']} · {info['class']}"
                  + (f" · aliases {', '.join(info['aliases'])}" if info["aliases"] else ""))
    table = Table(title="options")
    for column in ("name", "type", "default", "bounds", "description"):
        table.add_column(column, overflow="fold")
    for row in info["options"]:
        table.add_row(*(escape(str(row[c])) for c in ("name", "type", "default", "bounds", "description")))
    if info["options"]:
        console.print(table)
    else:
        console.print("options: none")
    for text in (info["docstring"], info["module_docstring"]):
        if text:
            console.print()
            console.print(escape(text))
