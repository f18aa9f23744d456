"""Request bodies as JSON Schema, checked one way, and published as an OpenAPI document."""

from .document import document
from .validation import SchemaError, validate

__all__ = ["SchemaError", "document", "validate"]
