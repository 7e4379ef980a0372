"""The stack driver: open, preflight, preview and up; recovery; the deployed outputs; role and TLS checks."""
