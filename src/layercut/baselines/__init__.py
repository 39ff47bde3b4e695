"""References a cut model is read against: a bag-of-words classifier fitted on a run's own splits."""
