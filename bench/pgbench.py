"""Live writers: pgbench with a custom insert script, connected as the logs writer.

pgbench's per-transaction log (-l) gives every insert's latency, so percentiles cover each insert
rather than pgbench's per-interval averages. The password goes through PGPASSWORD, not arguments.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.stats import percentile
from ops.localpg.embedded import client_bin_dir

# An insert of the kind the log worker makes: no RETURNING, the writer may not SELECT.
INSERT_SCRIPT = """\\set n random(1, 1000000)
INSERT INTO {table} (level, component, message, error_type, request_id)
VALUES (CASE WHEN :n % 20 = 0 THEN 'ERROR' ELSE 'INFO' END, 'component_' || (:n % 20),
        'live insert ' || :n, CASE WHEN :n % 20 = 0 THEN 'TimeoutError' END, md5(:n::text));
"""
CLIENTS = 2
FLAT_OUT_CLIENTS = 8
# A steady log stream, not a flood: at full speed two cores are saturated by the writers alone and
# any other work shows up as CPU queueing rather than as what a migration does to them (locks).
RATE_PER_S = 1000


@dataclass(frozen=True)
class Latencies:
    """Per-insert latencies in milliseconds, sorted, for inserts that were due within a window."""

    values_ms: list[float]
    seconds: float

    @property
    def p50(self) -> float:
        return percentile(self.values_ms, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.values_ms, 0.99)

    @property
    def max(self) -> float:
        return self.values_ms[-1] if self.values_ms else float("nan")

    @property
    def over_one_second(self) -> int:
        return sum(1 for value in self.values_ms if value > 1000.0)

    @property
    def inserts_per_second(self) -> float:
        return len(self.values_ms) / self.seconds if self.seconds else 0.0


class WriterLoad:
    """Writers inserting in the background for a fixed time; leaving the `with` block waits for the end.

    One pgbench run, not several short ones: at a fixed rate, inserts held up behind a lock are made
    up for once it is released, and their schedule lag is what the writers felt. A run cut short
    while blocked would never make them up, and the worst of the wait would go unmeasured.
    """

    def __init__(
        self,
        host: str,
        port: int,
        database: str,
        user: str,
        password: str,
        seconds: float,
        rate_per_s: int | None = RATE_PER_S,
        table: str = "system_logs",
        script: str | None = None,
    ) -> None:
        """rate_per_s=None runs writers flat out, enough of them to keep both cores busy (throughput);
        a rate makes a steady stream from two writers. `script` replaces the log insert (another table's)."""
        self.folder = Path(tempfile.mkdtemp(prefix="bench-pgbench-"))
        (self.folder / "insert.sql").write_text(script or INSERT_SCRIPT.replace("{table}", table))
        self._env = dict(os.environ, PGPASSWORD=password)
        clients = CLIENTS if rate_per_s else FLAT_OUT_CLIENTS
        load = ["-c", str(clients), "-j", "2", "-T", str(round(seconds)), "-f", str(self.folder / "insert.sql")]
        rate = ["-R", str(rate_per_s)] if rate_per_s else []
        log = ["-l", "--log-prefix", str(self.folder / "latency")]
        target = ["-h", host, "-p", str(port), "-U", user, database]
        self._command = [str(client_bin_dir() / "pgbench"), "-n", *load, *rate, *log, *target]
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> WriterLoad:
        self._process = subprocess.Popen(
            self._command, env=self._env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        return self

    def __exit__(self, *_: object) -> None:
        assert self._process is not None
        _output, stderr = self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f"pgbench failed: {stderr.strip()}")

    def latencies(self, since_epoch: float | None = None, until_epoch: float | None = None) -> Latencies:
        """Latencies of the inserts that were due in [since, until); the whole run when not given."""
        values: list[float] = []
        starts: list[float] = []
        for log in self.folder.glob("latency*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                # At a fixed rate the log adds each insert's schedule lag: the time it waited to
                # start, behind a blocked one. A writer feels both, so latency counts from when the
                # insert was due.
                lag_us = int(fields[6]) if len(fields) > 6 else 0
                latency_us = int(fields[2]) + lag_us
                finished = int(fields[4]) + int(fields[5]) / 1e6
                started = finished - latency_us / 1e6
                if (since_epoch is None or started >= since_epoch) and (until_epoch is None or started < until_epoch):
                    values.append(latency_us / 1000.0)
                    starts.append(started)
        seconds = (max(starts) - min(starts)) if starts else 0.0
        return Latencies(sorted(values), seconds)
