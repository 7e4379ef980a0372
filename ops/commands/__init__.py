"""The scripts' entry points, one module per command: parse the arguments (ops.cli), call the driver."""
