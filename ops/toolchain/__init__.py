"""The pinned toolchain: the Pulumi CLI, its language host and the postgresql provider, built here."""
