"""A run's settings, the floor every stage stands on: declared once (`RunConfig`, each field with its group,
help and allowed values), checked, keyed, and resolved against the machine (precision) and the data (task)."""
