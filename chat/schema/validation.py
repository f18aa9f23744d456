"""One way to check a request body against its schema, and one translator of the result.

The schemas are the published OpenAPI document's (chat.schema.bodies). A failing body
becomes a `SchemaError`: a ChatError with API.md's code (from the schema's
`x-errors` where it names one), the status that goes with it, and `param`, the path of
the offending value, which `/v1/` reports as OpenAI's `param`.
"""

from __future__ import annotations

import functools
import json

import jsonschema_rs

from chat.errors import ChatError

TOO_LARGE = "content_too_large"
SIZE_KEYWORDS = {"maxLength", "maxItems"}


class SchemaError(ChatError):
    """A body that breaks its schema; `param` says where (`messages[3].content`)."""

    def __init__(self, message: str, code: str, param: str | None):
        super().__init__(message, code=code)
        self.status = 413 if code == TOO_LARGE else 400
        self.param = param


def validate(body, schema: dict, default_code: str = "invalid_field") -> None:
    """Raise SchemaError for the first way `body` breaks `schema`."""
    error = next(_validator(json.dumps(schema, sort_keys=True)).iter_errors(body), None)
    if error is not None:
        raise translate(error, schema, default_code)


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str):
    # Keyed by the schema's text: its limits come from settings, which tests change.
    return jsonschema_rs.Draft202012Validator(json.loads(schema_json))


def translate(error, schema: dict, default_code: str) -> SchemaError:
    """The one translator: a jsonschema error as the site's code, status and sentence."""
    keyword = error.schema_path[-1]
    node = _node(schema, error.schema_path[:-1])
    details = error.kind.as_dict()
    path = list(error.instance_path)
    if keyword == "required":
        path.append(details["property"])
    default = TOO_LARGE if keyword in SIZE_KEYWORDS else default_code
    code = node.get("x-errors", {}).get(keyword, default)
    param = _param(path)
    return SchemaError(_sentence(param or "The body", keyword, details, error), code, param)


def _node(schema: dict, path) -> dict:
    for step in path:
        schema = schema[step]
    return schema if isinstance(schema, dict) else {}


def _param(path) -> str | None:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or None


def _sentence(where: str, keyword: str, details: dict, error) -> str:
    quoted = where if where == "The body" else f"'{where}'"
    sentences = {
        "required": lambda: f"{quoted} is required.",
        "type": lambda: f"{quoted} must be {_types(details.get('types', []))}.",
        "maxLength": lambda: (
            f"{quoted} is {len(error.instance)} characters long; the limit is {details['limit']}."
        ),
        "minLength": lambda: f"{quoted} must not be empty.",
        "maxItems": lambda: (
            f"{quoted} has {len(error.instance)} items; the limit is {details['limit']}."
        ),
        "minItems": lambda: f"{quoted} must have at least {details['limit']} item(s).",
        "enum": lambda: f"{quoted} must be one of {_options(details['options'])}.",
        "const": lambda: f"{quoted} must be {json.dumps(details.get('expected_value'))}.",
        "minimum": lambda: f"{quoted} must be at least {details['limit']}.",
        "maximum": lambda: f"{quoted} must be at most {details['limit']}.",
    }
    if keyword in sentences:
        return sentences[keyword]()
    return f"{quoted} is not valid here."


def _types(types: list[str]) -> str:
    names = [{"null": "null", "integer": "a whole number"}.get(t, f"a {t}") for t in types]
    names = [n.replace("a object", "an object").replace("a array", "an array") for n in names]
    return " or ".join(names)


def _options(options: list) -> str:
    return ", ".join(json.dumps(option) for option in options)
