"""Mutation testing with cosmic-ray (pinned beside this): the stages of tests and scripts/mutate."""
