"""Serving versions: what the download path asks the catalog, and the records of what was sent."""
