"""
Live sessions. Each live session belongs to one worker, its host (``host.SessionHost``), which
alone mutates it: attach/detach with epochs, turns, the slash worker and the one teardown.
The package imports nothing, so any of its modules can be imported first.
"""
