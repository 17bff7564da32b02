"""Handing the collection over as files: WARC records and a WACZ package."""
