"""The deployment launcher's restart policy (scripts/deploy.py), without starting anything."""

import importlib.util

import pytest

from tests.support.servers import REPO


def load_deploy():
    spec = importlib.util.spec_from_file_location("deploy_script", REPO / "scripts" / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deploy = load_deploy()


def test_a_worker_dying_at_once_is_restarted_after_a_doubling_pause():
    """Tests that each quick death in a row doubles the pause before the restart."""
    backoff = deploy.Backoff(initial=0.5, cap=30, reset_after=60)
    assert [backoff.next(uptime=1) for _ in range(4)] == [0.5, 1, 2, 4]


def test_the_restart_pause_is_capped():
    """Tests that a worker that keeps dying is retried at most every ``cap`` seconds."""
    backoff = deploy.Backoff(initial=0.5, cap=3, reset_after=60)
    assert [backoff.next(uptime=0) for _ in range(5)] == [0.5, 1, 2, 3, 3]


def test_a_worker_that_stayed_up_starts_again_from_the_first_pause():
    """Tests that a death after ``reset_after`` seconds up resets the pause."""
    backoff = deploy.Backoff(initial=0.5, cap=30, reset_after=60)
    for _ in range(3):
        backoff.next(uptime=1)
    assert backoff.next(uptime=60) == 0.5
    assert backoff.next(uptime=1) == 1


def daphne_args(command):
    """``command``'s daphne options as daphne's own command line parses them."""
    from daphne.cli import CommandLineInterface

    assert command[1:3] == ["-m", "hermes_site.serving"]
    return CommandLineInterface().parser.parse_args(command[3:])


def test_a_worker_trusts_no_forwarding_header_by_default():
    """Tests that a worker, launched without --proxy-headers, takes the client's address
    from its TCP peer: a directly reachable port must not let clients pick their address."""
    args = daphne_args(deploy.worker_command(7))
    assert args.file_descriptor == 7 and args.socket_strings == []
    assert not args.proxy_headers


def test_proxy_headers_has_the_workers_take_the_client_from_x_forwarded_for():
    """Tests that deploy.py --proxy-headers gives each worker daphne's --proxy-headers."""
    args = daphne_args(deploy.worker_command(7, proxy_headers=True))
    assert args.proxy_headers and args.file_descriptor == 7


def test_a_worker_with_a_metrics_socket_serves_on_it_beside_the_shared_one():
    """Tests that the worker's own metrics socket is an extra daphne endpoint (the adopted
    descriptor), beside the shared socket of --fd."""
    args = daphne_args(deploy.worker_command(7, metrics_fd=9))
    assert args.file_descriptor == 7
    assert args.socket_strings == ["fd:fileno=9"]


def test_each_worker_gets_the_metrics_port_after_the_previous_ones():
    """Tests that --metrics-port BASE gives worker i the port BASE+i."""
    assert deploy.metrics_ports(9100, 3) == [9100, 9101, 9102]


def test_metrics_ports_that_include_the_shared_port_are_refused(monkeypatch, capsys):
    """Tests that --metrics-port BASE whose range covers --port stops before anything
    starts, naming the clash."""
    argv = ["deploy.py", "--workers", "2", "--port", "9101", "--metrics-port", "9100"]
    monkeypatch.setattr(deploy.sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        deploy.main()
    assert exited.value.code == 2
    assert "includes --port 9101" in capsys.readouterr().err
