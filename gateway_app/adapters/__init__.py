"""
The framework internals the gateway relies on, one module per framework: ``daphne`` (its
Twisted write buffer, its Server class) and ``asyncio_subprocess`` (a child's transport). When
a framework changes shape, one module and its test break, not the code that uses them.
"""
