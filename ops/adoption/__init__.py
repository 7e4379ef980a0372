"""scripts/adopt: inspect a running deployment, plan its adoption, move misplaced rows, apply."""
