"""The HTTP API, version 1 (../shared/API.md): thin handlers over the services."""
