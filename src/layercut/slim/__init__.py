"""Slim deployment: vocabulary trimming, and every depth's untrained scores and size from one pass."""
