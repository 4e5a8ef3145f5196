"""The OpenAPI schema tells the whole truth about errors: a drf-spectacular postprocessing hook adds the
error answers every endpoint can give (bad input, credentials, permission, not found or not visible,
conflicts, body too large, rate limits), each with the one error shape, unless the view documented its
own. Registered in modelfactory/schema_settings.py."""

from __future__ import annotations

ERROR = {
    "type": "object",
    "description": "What went wrong, in words: `detail` for the request as a whole, or the name of each field "
    "at fault with its problems.",
    "properties": {"detail": {"description": "A sentence, or a list of them."}},
    "additionalProperties": {},
}
WORDS = {
    "400": "The request is not valid: the body names each field at fault.",
    "401": "The API key or session was not accepted.",
    "403": "Signed in, but not allowed to do this.",
    "404": "No such thing, or one the caller may not see (the two are not told apart); also an invalid page.",
    "409": "The request conflicts with the current state (a name already taken, a vote already cast…).",
    "413": "The body is larger than this server accepts; refused before it is read.",
    "422": "The file was read, but its rows have errors; nothing was stored.",
    "429": "A rate limit or a fair-share limit was reached; `Retry-After` says in how many seconds to ask again.",
}
WRITES = ("post", "put", "patch", "delete")


def codes_for(method: str, operation: dict) -> list[str]:
    codes = ["401", "403", "404", "429"]
    if method in WRITES or operation.get("parameters") or operation.get("requestBody"):
        codes.append("400")
    if method in WRITES:
        codes.append("409")
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        codes.append("413")
    if "multipart/form-data" in body:
        codes.append("422")
    return codes


def _requires_a_body(operation: dict, schemas: dict) -> bool:
    """A body whose schema has required fields cannot be left out."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = schemas.get(ref.rsplit("/", 1)[1], {})
        branches = schema.get("oneOf") or schema.get("anyOf") or [schema]
        if all(isinstance(b, dict) and b.get("required") for b in branches):
            return True
    return False


NO_NUL = "^[^\\u0000]*$"  # text fields refuse NUL characters (400), so the schema says so
# What Python's str.strip() takes away (DRF trims text before checking it is not blank).
_SPACE = (
    "\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_BLANK = f"^[^\\u0000]*[^\\u0000{_SPACE}][^\\u0000]*$"  # and a required text has something besides spaces


def _no_nul(schema) -> None:
    """Every free text string in `schema` (and what it nests) gets the NO_NUL pattern."""
    if isinstance(schema, list):
        for item in schema:
            _no_nul(item)
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not ({"enum", "format", "pattern"} & schema.keys()):
        schema["pattern"] = NOT_BLANK if schema.get("minLength") else NO_NUL
    for key in ("properties", "items", "additionalProperties", "oneOf", "anyOf", "allOf"):
        value = schema.get(key)
        if isinstance(value, dict) and key == "properties":
            for child in value.values():
                _no_nul(child)
        elif value is not None:
            _no_nul(value)


def document_errors(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for schema in schemas.values():
        _no_nul(schema)
    schemas["Error"] = ERROR
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", *WRITES):
                continue
            if _requires_a_body(operation, schemas):
                operation["requestBody"]["required"] = True
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _no_nul(media.get("schema"))
            for code in codes_for(method, operation):
                operation["responses"].setdefault(code, {"description": WORDS[code], "content": error})
    return result
