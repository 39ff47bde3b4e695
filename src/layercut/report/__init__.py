"""A sweep's report: paper-style tables and every run (markdown), and figures (plots)."""
