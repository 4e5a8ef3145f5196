"""drf-spectacular's settings for the OpenAPI schema at /api/schema/ (read by settings.py)."""

SPECTACULAR = {
    # Every error answer each endpoint can give, in the schema (core/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.schema.document_errors"],
    "COMPONENT_SPLIT_REQUEST": True,  # request bodies get components of their own (no read-only fields)
    "TITLE": "ModelFactory API",
    "DESCRIPTION": "Datanets, training jobs and models. Authenticate with `Authorization: Bearer <API key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from drf-spectacular-sidecar's static files: no CDN, docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "core.jobs.JobStatus.choices",
        "ContributionStatusEnum": [("pending", "Pending"), ("accepted", "Accepted"), ("rejected", "Rejected")],
        "AccessRequestStatusEnum": [("pending", "Pending"), ("approved", "Approved"), ("denied", "Denied")],
        "RoleEnum": [
            ("viewer", "Viewer"),
            ("contributor", "Contributor"),
            ("validator", "Validator"),
            ("owner", "Owner"),
        ],
        "GrantableRoleEnum": [("viewer", "Viewer"), ("contributor", "Contributor"), ("validator", "Validator")],
    },
}
