"""The embedded PostgreSQL server of the dev stack, the tests and CI."""
