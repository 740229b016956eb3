"""The fast path of rendering: a template that only prints row fields between literal text.

``Classify: {{ row.text }}`` or ``{{ row['subject'] }} / {{ row.body }}`` render, for a ``dict`` row
holding every field, as literal text joined with ``str(value)`` of each field: what the sandboxed
Jinja template outputs for them (values are data: ``{{ 1+1 }}`` inside a value is printed as is).
The template is recognised once, from Jinja's own parse tree, when the spec is built; anything else
(filters, tests, conditionals, loops, context names, ``row.items`` and other names a dict has as
attributes) keeps the Jinja path. A row the fast path cannot render (not a plain dict, a field
missing) is handed back to Jinja, so errors and edge cases are Jinja's, word for word.

Example::

    >>> from jinja2.sandbox import ImmutableSandboxedEnvironment
    >>> env = ImmutableSandboxedEnvironment()
    >>> FieldTemplate.of(env, "Classify: {{ row.text }}!").render({"text": "{{ 1+1 }}"})
    'Classify: {{ 1+1 }}!'
    >>> FieldTemplate.of(env, "{{ row.text | upper }}") is None
    True
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, nodes

#: the row's name in templates
ROW = "row"
_MISSING = object()


class FieldTemplate:
    """Literal text and row fields, in order: ``parts[i]`` is a literal when ``is_field[i]`` is
    false, else the name of a field."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts
        self.fields = tuple(name for is_field, name in parts if is_field)
        #: the field's name when the template is that one field and nothing else (``{{ row.text }}``)
        self.only = parts[0][1] if len(parts) == 1 and parts[0][0] else None

    @classmethod
    def of(cls, env: Environment, source: str) -> FieldTemplate | None:
        """The fast form of ``source``, or None when it does anything but print row fields."""
        body = env.parse(source).body
        parts: list[tuple[bool, str]] = []
        for node in body:
            if not isinstance(node, nodes.Output):
                return None
            for child in node.nodes:
                part = _part(child)
                if part is None:
                    return None
                parts.append(part)
        return cls(parts)

    def render(self, row: Any) -> str | None:
        """The rendered text, or None when this row needs the Jinja path (not a plain dict, or a
        field is missing: Jinja then raises its own error naming the field)."""
        if type(row) is not dict:
            return None
        if self.only is not None:
            value = row.get(self.only, _MISSING)
            return None if value is _MISSING else value if type(value) is str else str(value)
        out: list[str] = []
        for is_field, text in self.parts:
            if not is_field:
                out.append(text)
            elif text in row:
                out.append(str(row[text]))
            else:
                return None
        return "".join(out)


def _part(node: nodes.Node) -> tuple[bool, str] | None:
    if isinstance(node, nodes.TemplateData):
        return False, node.data
    if isinstance(node, nodes.Getattr):
        # ``row.items``, ``row.__class__``...: Jinja looks up a dict's attribute before its field
        name: Any = None if hasattr(dict, node.attr) else node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        name = node.arg.value  # ``row['items']``: Jinja looks up the field first
    else:
        return None
    target = node.node
    if isinstance(target, nodes.Name) and target.name == ROW and isinstance(name, str):
        return True, name
    return None
