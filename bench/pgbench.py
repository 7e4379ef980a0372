"""Live writers: pgbench with a custom insert script, connected as the logs writer.

pgbench's per-transaction log (-l) gives every insert's latency, so percentiles cover each insert
rather than pgbench's per-interval averages. The password goes through PGPASSWORD, not arguments.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from bench.stats import percentile
from ops.localpg import find_bin_dir

# An insert of the kind the log worker makes: no RETURNING, the writer may not SELECT.
INSERT_SCRIPT = """\\set n random(1, 1000000)
INSERT INTO system_logs (level, component, message, error_type, request_id)
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


SEGMENT_S = 4  # pgbench cannot be stopped cleanly, so the load runs as back-to-back short runs


class WriterLoad:
    """Writers inserting in the background from start() until stop(), whatever happens meanwhile."""

    def __init__(
        self, host: str, port: int, database: str, user: str, password: str, rate_per_s: int | None = RATE_PER_S
    ) -> None:
        """rate_per_s=None runs writers flat out, enough of them to keep both cores busy (throughput);
        a rate makes a steady stream from two writers."""
        self.folder = Path(tempfile.mkdtemp(prefix="bench-pgbench-"))
        (self.folder / "insert.sql").write_text(INSERT_SCRIPT)
        self._env = dict(os.environ, PGPASSWORD=password)
        target = ["-h", host, "-p", str(port), "-U", user, database]
        clients = CLIENTS if rate_per_s else FLAT_OUT_CLIENTS
        load = ["-c", str(clients), "-j", "2", "-T", str(SEGMENT_S), "-f", str(self.folder / "insert.sql")]
        rate = ["-R", str(rate_per_s)] if rate_per_s else []
        self._command = [str(find_bin_dir() / "pgbench"), "-n", *load, *rate, "-l"]
        self._target = target
        self._stopping = threading.Event()
        self._errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        segment = 0
        while not self._stopping.is_set():
            segment += 1
            prefix = ["--log-prefix", str(self.folder / f"latency-{segment}")]
            result = subprocess.run(
                [*self._command, *prefix, *self._target], env=self._env, capture_output=True, text=True
            )
            if result.returncode != 0:
                self._errors.append(result.stderr.strip())
                return

    def __enter__(self) -> WriterLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join()
        if self._errors:
            raise RuntimeError(f"pgbench failed: {self._errors[0]}")

    def latencies(self, since_epoch: float | None = None, until_epoch: float | None = None) -> Latencies:
        """Latencies of the inserts that started in [since, until); the whole run when not given."""
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
