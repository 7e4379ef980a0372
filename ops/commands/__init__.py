"""Every script's entry point, one module per command, and their arguments in one table (cli.py)."""
