"""A slash-command module that fails to import."""

raise ImportError("this extension needs a package that is not installed")
