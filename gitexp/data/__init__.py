"""Data and outputs: content-addressed pointers (xxh3-128), a stat cache, a local object cache."""
