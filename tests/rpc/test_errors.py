"""The wire errors' error objects."""

from gateway_app.rpc.codes import INTERNAL_ERROR
from gateway_app.rpc.errors import WorkerDraining


def test_a_draining_refusal_says_so_in_its_data():
    """Tests that WorkerDraining answers -32603 with data.draining, so a client can tell a
    restarting worker (retry on the next connection) from a crashed handler."""
    assert WorkerDraining().as_error() == {
        "code": INTERNAL_ERROR,
        "message": "This worker is restarting: reconnect and retry",
        "data": {"draining": True},
    }
