"""The files a run folder holds, named once: every stage that reads a run folder (a teacher, a store) finds them here."""

RESULT_NAME = "result.json"  # a finished run's record (run/record.py writes and reads it)
FAILURE_NAME = "failure.json"  # a failed run's record
