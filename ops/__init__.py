"""The operator's side of scripts/: commands/ (every entry point), deploy/ (the stack driver), adoption/,
toolchain/, localpg/ (the embedded server); errors.py and paths.py serve them all."""
