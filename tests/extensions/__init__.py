"""Third-party extension modules the tests configure (Django-free, as the slash worker needs)."""
