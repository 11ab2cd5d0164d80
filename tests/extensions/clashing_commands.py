"""A slash-command module whose names are taken: one by a built-in, one by slash_commands."""

from __future__ import annotations

from typing import Any

from gateway_app.slash import command


@command(name="help", description="A second /help.")
def help_again(ctx: Any, args: str) -> str:
    return "not the built-in"


@command(name="weather", description="A second /weather.")
def weather_again(ctx: Any, args: str) -> str:
    return "Rain."
