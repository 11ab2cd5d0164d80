"""A project's own agent backends and tools, configured by dotted path in the tests."""
