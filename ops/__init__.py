"""The project's operations: the embedded server, the toolchain and the deploy driver behind scripts/."""
