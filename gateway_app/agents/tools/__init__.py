"""Tools the model may call: the interface (``base``), the built-in ``terminal`` tool and its
sandboxed runner, and ``load_tools`` for the ``TOOLS`` setting."""

from .base import Tool, ToolContext
from .loading import load_tools
from .runner import TRUNCATED_MARKER, run_terminal

__all__ = ["TRUNCATED_MARKER", "Tool", "ToolContext", "load_tools", "run_terminal"]
