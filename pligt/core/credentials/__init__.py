"""Crawler credentials: the access-request workflow, slow password hashes, and checking them cheaply."""
