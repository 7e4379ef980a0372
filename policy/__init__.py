"""The model's promises as a Pulumi policy pack, checked by `pulumi preview --policy-pack policy`.

`__main__.py` is what the Python language host runs (PulumiPolicy.yaml); `rules.py` holds the
rules as plain functions of what the engine shows a policy (`observed.py`) and of the stack's own
config (`stack_facts.py`), so that tests/unit checks them without an engine.
"""
