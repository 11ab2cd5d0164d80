"""A third-party slash-command module: what ``SLASH_COMMANDS`` documents a command may use."""

from __future__ import annotations

from typing import Any

from gateway_app.slash import command


@command(name="weather", description="Tell the weather of a city.", usage="/weather <city>")
def weather(ctx: Any, args: str) -> str:
    city = args.strip() or "nowhere"
    return f"Sunny in {city}."


@command(name="/whoami", description="Show the session and its user.")
def whoami(ctx: Any, args: str) -> str:
    return f"{ctx.user.username} (id {ctx.user.id}) in {ctx.session_id}, skin {ctx.skin}"


@command(name="count", description="Count the transcript's messages.", reads_transcript=True)
def count(ctx: Any, args: str) -> str:
    return f"{len(ctx.messages)} messages"


@command(name="rename", description="Set the title, shouted.", usage="/rename <text>")
def rename(ctx: Any, args: str) -> tuple[str, dict[str, Any]]:
    return "renamed", {"title": args.upper()}


@command(name="badskin", description="Ask for a skin that does not exist.")
def badskin(ctx: Any, args: str) -> tuple[str, dict[str, Any]]:
    return "nope", {"skin": "neon"}


@command(name="noisy", description="Print while running.")
def noisy(ctx: Any, args: str) -> str:
    print("debugging output", flush=True)
    return "done"
