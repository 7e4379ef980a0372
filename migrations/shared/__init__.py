"""What both env.py files share: the tree's identity, the placement guard, the run lock, connecting."""
