"""The HTTP API, version 1: thin handlers over the services (served at /api/v1/openapi.json)."""
