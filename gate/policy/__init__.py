"""Built-in rules (``rules/``), org policies, CEL custom rules and waivers."""
