"""The two Alembic trees (main/, logs/) and what their env.py files share (shared/)."""
