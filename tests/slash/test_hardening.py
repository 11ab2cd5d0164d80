"""Slash commands are parsed by the slash worker, never handed to a shell."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "template",
    [
        "/title $(touch {marker})",
        "/title `touch {marker}`",
        "/title x; touch {marker}",
        "/title x && touch {marker} || touch {marker}",
        "/title x | tee {marker}",
        "/title x > {marker}",
        "/help; touch {marker}",
        "/skin $(touch {marker})",
        "/nosuch\ntouch {marker}",
    ],
)
async def test_shell_metacharacters_in_slash_commands_are_not_executed(
    connect, alice, tmp_path, template
):
    """Tests that command substitution, separators, pipes and redirects in a slash command
    reach the worker as plain text: no file is created, the gateway answers normally."""
    marker = tmp_path / "pwned"
    command = template.format(marker=marker)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    response = await rpc.request("slash.exec", {"session_id": sid, "command": command})
    assert "result" in response or response["error"]["code"] in (-32602, -32603)
    if command.startswith("/title"):
        listed = (await rpc.call("session.list"))["sessions"]
        assert listed[0]["title"] == command.removeprefix("/title ").strip()[:200]
    assert not marker.exists()
    await rpc.call("session.close", {"session_id": sid})
