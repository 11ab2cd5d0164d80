"""
The benchmark's verdicts and its one printed table: figures per target, gateway ratios and
PASS/FAIL against the targets, plus notes on anything that makes a figure suspect.
"""

from __future__ import annotations

import statistics
from typing import Any, NamedTuple

TARGETS = ("stock", "nohop", "gateway")
TARGET_TITLES = {"stock": "stock", "nohop": "no-hop", "gateway": "gateway"}

# Targets (ratios are gateway / baseline, measured in the same run).
RPC_MIN_RATIO = 0.8
CHURN_MIN_RATIO = 0.8
STREAM_MIN_RATIO = 0.8
MAX_KB_PER_SESSION = 50.0


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("inf")


class Throughput(NamedTuple):
    """How a throughput phase is judged: its figure, its baselines, its target ratio."""

    key: str
    #: The gateway is compared with the better of these baselines.
    against: tuple[str, ...]
    min_ratio: float

    def versus(self, baseline: str) -> str:
        """How the target names its baseline: the only one, or the better one picked."""
        title = TARGET_TITLES[baseline]
        return title if len(self.against) == 1 else f"better ({title})"

    def better_baseline(self, rounds: dict[str, list[dict[str, Any]]]) -> str:
        """
        The baseline the gateway is judged against: the one with the better median round.
        Picked by medians, not best rounds, so the verdict compares one best-of-N with one
        best-of-N: the better best round of two baselines that run alike (stock and no-hop
        in churn) is a best-of-2N, raised by noise alone.
        """
        return max(
            self.against,
            key=lambda target: statistics.median(r[self.key] for r in rounds[target]),
        )


#: The throughput phases; ``key`` also picks each target's best round (``run.py``).
THROUGHPUT = {
    "rpc": Throughput("req_per_s", ("nohop",), RPC_MIN_RATIO),
    "stream": Throughput("words_per_s", ("stock", "nohop"), STREAM_MIN_RATIO),
    "churn": Throughput("cycles_per_s", ("stock", "nohop"), CHURN_MIN_RATIO),
}


def _clean(phase: str, gateway: dict[str, Any]) -> bool:
    """No error responses, every turn complete, no failed cycle or slash worker left."""
    if phase == "stream":
        return gateway["incomplete_turns"] == 0
    if phase == "churn":
        return gateway["errors"] == 0 and gateway["slash_workers_alive"] == 0
    return gateway["errors"] == 0


def verdicts(results: dict[str, Any], config: Any) -> dict[str, dict[str, Any]]:
    """PASS/FAIL per phase that ran (``--phases`` may leave some out)."""
    out: dict[str, dict[str, Any]] = {}
    for phase, spec in THROUGHPUT.items():
        if figures := results.get(phase):
            baseline = spec.better_baseline(results["rounds"][phase])
            ratio = _ratio(figures["gateway"][spec.key], figures[baseline][spec.key])
            out[phase] = {
                "ratio": ratio,
                "baseline": baseline,
                "target": f">= {spec.min_ratio}x {spec.versus(baseline)}",
                "pass": ratio >= spec.min_ratio and _clean(phase, figures["gateway"]),
            }
    if memory := results.get("memory"):
        mem = memory["gateway"]
        detached = mem.get("statuses", {}).get("detached", 0)
        out["memory"] = {
            "ratio": mem["kb_per_session"],
            "target": f"<= {MAX_KB_PER_SESSION:g} KB",
            "pass": mem["kb_per_session"] <= MAX_KB_PER_SESSION
            and mem["slash_workers_seen"] == 0
            and detached == config.sessions,
        }
    return out


# (phase, key, label, format, verdict shown on this row)
ROWS = [
    ("rpc", "req_per_s", "rpc session.list req/s", "{:.0f}", "rpc"),
    ("rpc", "p50_ms", "rpc p50 ms", "{:.2f}", None),
    ("rpc", "p99_ms", "rpc p99 ms", "{:.2f}", None),
    ("stream", "words_per_s", "stream words/s", "{:.0f}", "stream"),
    ("stream", "first_delta_p50_ms", "stream first delta p50 ms", "{:.1f}", None),
    ("stream", "delta_frames", "stream delta frames", "{:d}", None),
    ("churn", "cycles_per_s", "churn cycles/s", "{:.1f}", "churn"),
    ("churn", "server_cpu_ms", "churn server CPU ms/cycle", "{:.2f}", None),
    ("churn", "slash_workers_alive", "churn slash workers alive", "{:d}", None),
    ("memory", "kb_per_session", "memory KB/idle session", "{:.1f}", "memory"),
    ("memory", "slash_workers_seen", "memory slash workers spawned", "{:d}", None),
]
HIGHER_IS_BETTER = {"req_per_s", "words_per_s", "cycles_per_s"}


def table(all_results: dict[str, dict[str, Any]], config: Any) -> str:
    header = [
        "server",
        "metric",
        "stock",
        "no-hop",
        "gateway",
        "gw/stock",
        "gw/no-hop",
        "target",
        "",
    ]
    lines = [header]
    for server, results in all_results.items():
        marks = verdicts(results, config)
        for phase, key, label, fmt, verdict in ROWS:
            if phase not in results:
                continue
            values = [results[phase][target][key] for target in TARGETS]
            cells = [server, label, *(fmt.format(v) for v in values)]
            if key in HIGHER_IS_BETTER or key.endswith("_ms") or key == "kb_per_session":
                cells += [
                    f"{_ratio(values[2], values[0]):.2f}x",
                    f"{_ratio(values[2], values[1]):.2f}x",
                ]
            else:
                cells += ["", ""]
            if verdict is not None:
                mark = marks[verdict]
                cells += [mark["target"], "PASS" if mark["pass"] else "FAIL"]
            else:
                cells += ["", ""]
            lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    right = {2, 3, 4, 5, 6}
    text = []
    for index, row in enumerate(lines):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if index == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def _median_ratios(rounds: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """
    Per phase run in two or more rounds, the gateway's median round over the better
    baseline's median round (rpc: over no-hop's, as its target). The table keeps each
    target's best round; on a busy machine one lucky round moves that ratio, the medians
    much less, so both are shown.
    """
    parts = []
    for phase, spec in THROUGHPUT.items():
        runs = rounds.get(phase, {})
        if len(runs.get("gateway", [])) < 2:
            continue
        median = {t: statistics.median(r[spec.key] for r in runs[t]) for t in TARGETS}
        baseline = spec.better_baseline(runs)
        parts.append(f"{phase} {_ratio(median['gateway'], median[baseline]):.2f}x")
    return ", ".join(parts)


def notes(all_results: dict[str, dict[str, Any]], config: Any) -> list[str]:
    """Anything that makes a figure suspect, over every round: errors, short turns, sessions
    not detached."""
    out = []
    for server, results in all_results.items():
        rounds = results["rounds"]
        for target in TARGETS:
            name = f"{server}/{TARGET_TITLES[target]}"
            errors = sum(r["errors"] for r in rounds.get("rpc", {}).get(target, []))
            if errors:
                out.append(f"{name}: {errors} rpc error responses")
            short = sum(r["incomplete_turns"] for r in rounds.get("stream", {}).get(target, []))
            if short:
                out.append(
                    f"{name}: {short} stream turns did not deliver {config.words} words "
                    "with a matching message.complete"
                )
            failed = [r for r in rounds.get("churn", {}).get(target, []) if r["errors"]]
            if failed:
                total = sum(r["errors"] for r in failed)
                out.append(f"{name}: {total} churn cycles failed ({failed[0]['first_error']})")
        spread = _median_ratios(rounds)
        if spread:
            out.append(f"{server}: ratios of the median rounds (targets' baselines): {spread}")
        if "memory" in results:
            statuses = results["memory"]["gateway"].get("statuses", {})
            out.append(
                f"{server}/gateway: idle sessions by status after the memory fill: {statuses}"
            )
    return out
