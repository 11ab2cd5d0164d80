"""
The gateway's public signals (``django.dispatch.Signal``), sent by the session host with
``sender`` the ``SessionHost`` class. Connect sync or async receivers as usual, e.g.
``@receiver(turn_finished)``. They are sent from one background task of the host, in the order
the events happened, with ``send_robust`` semantics: a slow receiver delays no client and
a raising one is logged (``django.dispatch``) and changes nothing. Arguments:

- ``session_created(session_id, user_id, title)``: ``session.create``.
- ``session_attached(session_id, user_id, channel_name)``: a connection (its channel-layer
  channel) attached: on create, resume or a prompt from a connection not yet attached.
- ``session_detached(session_id, user_id, channel_name)``: that connection detached or went
  away while the session stayed live.
- ``session_closed(session_id, user_id, reason)``: the session ended; ``reason`` is one of
  ``closed``, ``reaped``, ``ttl``, ``evicted``.
- ``turn_started(session_id, user_id, turn_id, text)``: a prompt was accepted.
- ``turn_finished(session_id, user_id, turn_id, text, interrupted, tool_calls)``: the turn
  ended (completed, interrupted, crashed or torn down); ``text`` is the reply so far and
  ``tool_calls`` a list of ``{"name", "args", "result"}`` of the tool calls that completed.
"""

from django.dispatch import Signal

session_created = Signal()
session_attached = Signal()
session_detached = Signal()
session_closed = Signal()
turn_started = Signal()
turn_finished = Signal()

__all__ = [
    "session_attached",
    "session_closed",
    "session_created",
    "session_detached",
    "turn_finished",
    "turn_started",
]
