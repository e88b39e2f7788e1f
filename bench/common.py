"""What every benchmark shares: load at a fixed rate, fleets of websocket clients in worker
processes, latency percentiles, CPU and RSS of the server processes, and the printed tables.

The fan-out measurement is defined here once so that Switchboard (`bench/fanout.py`) and the
python-socketio peer (`bench/peer_socketio.py`) report the same columns from the same method:

- N clients, split over one or more client worker processes, connect and subscribe; a client
  protocol adapter (`ClientAdapter`) says how to connect, subscribe, recognise an event frame
  and read the event id out of it.
- M events are sent at a fixed rate; the sender notes the send time of each event id.
- Every client's event frames are counted: P "probe" clients (spread over the workers)
  decode each frame and note its receive time, which gives event->frame latency (monotonic
  clock, shared by all processes on one Linux machine); the others are counted by
  `frame_counter.c`, to which each worker hands them once subscribed.
- Delivered frames/s = event frames received by all clients / (last frame received - first
  event sent). CPU is the server processes' CPU time over the same window (100% = one core);
  RSS is the peak sum of the server processes' resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import psutil

from bench import wsclient

REPO = Path(__file__).resolve().parents[1]


# --- environment -------------------------------------------------------------------------


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards `wanted` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_line() -> str:
    cpu = "unknown cpu"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.1f} GiB RAM, Python {sys.version.split()[0]}"


def bench_parser(doc: str | None, databases: str) -> argparse.ArgumentParser:
    """The options every Switchboard benchmark takes: --databases and --smoke."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--databases", default=databases, help="sqlite and/or postgres")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    return parser


# --- statistics --------------------------------------------------------------------------


def fanout_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of a fan-out run (bench/fanout.py, bench/peer_socketio.py)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1200)
    parser.add_argument(
        "--rates",
        default="40,120,600",
        help="events per second, comma-separated; frames/s equals the offered load "
        "(clients x rate) while the server keeps up, and plateaus at its capacity",
    )
    parser.add_argument("--probes", type=int, default=10, help="clients that time each frame")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--processes", default="1,2", help="server process counts to run")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    return parser


def parse_fanout_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients, args.events, args.rates, args.probes, args.client_processes = (
            20,
            20,
            "50",
            5,
            1,
        )
    return args


def runs(args: argparse.Namespace) -> list[tuple[float, int]]:
    """(rate, process count) of every configuration asked for."""
    return [
        (float(rate), int(processes))
        for rate in args.rates.split(",")
        for processes in args.processes.split(",")
    ]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds."""

    p50: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        return cls(percentile(ms, 50), percentile(ms, 99), max(ms, default=math.nan), len(ms))


class ProcessSampler:
    """CPU time and peak resident memory of a set of processes over a measured window."""

    def __init__(self, pids: Iterable[int], interval: float = 0.1) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak_rss = 0
        self._cpu_start = 0.0
        self._wall_start = 0.0
        self._task: asyncio.Task[None] | None = None

    def _cpu(self) -> float:
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        total = 0
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def start(self) -> None:
        self._cpu_start = self._cpu()
        self._wall_start = time.monotonic()
        self.peak_rss = self.rss()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, self.rss())
            await asyncio.sleep(self.interval)

    async def stop(self) -> tuple[float, float]:
        """(CPU percent of one core over the window, peak RSS in MiB)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak_rss = max(self.peak_rss, self.rss())
        wall = max(time.monotonic() - self._wall_start, 1e-9)
        return 100 * (self._cpu() - self._cpu_start) / wall, self.peak_rss / 2**20


# --- load --------------------------------------------------------------------------------


async def at_fixed_rate(
    count: int, rate: float, send: Callable[[int], Awaitable[None]], max_in_flight: int = 256
) -> dict[int, float]:
    """Call `send(i)` for i in 0..count-1 at `rate` per second, not waiting for each to finish.

    Returns the monotonic time at which each send started. Sends run concurrently up to
    `max_in_flight`; if the target cannot keep up the schedule slips rather than piling up.
    """
    started: dict[int, float] = {}
    gate = asyncio.Semaphore(max_in_flight)
    tasks: list[asyncio.Task[None]] = []
    errors: list[BaseException] = []
    origin = time.monotonic()

    async def one(index: int) -> None:
        try:
            await send(index)
        except Exception as exc:  # noted and re-raised below, after the schedule has run
            errors.append(exc)
        finally:
            gate.release()

    for index in range(count):
        delay = origin + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        started[index] = time.monotonic()
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} sends failed; first: {errors[0]!r}")
    return started


# --- websocket client fleets ---------------------------------------------------------------


class MessageSocket(Protocol):
    """What a handshake gets to talk through (`bench.wsclient.RawClient`)."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes) -> None: ...


class ClientAdapter(Protocol):
    """How one kind of server is spoken to. Must be picklable (it goes to worker processes)."""

    @property
    def event_marker(self) -> bytes:
        """Bytes found in every event frame of the benchmark and in no other frame."""
        ...

    @property
    def text_ping(self) -> tuple[str, str] | None:
        """A text message the server expects answered (an Engine.IO ping) and its answer."""
        ...

    def url(self, index: int) -> str: ...

    def headers(self, index: int) -> dict[str, str]:
        """Extra headers of the upgrade request (subprotocol, credentials)."""
        ...

    async def handshake(self, ws: MessageSocket, index: int) -> None:
        """Authenticate/subscribe; return once the server confirmed the subscription."""
        ...

    def event_id(self, message: str | bytes) -> int | None:
        """The benchmark event id carried by an event frame (decodes it)."""
        ...


def is_event(adapter: ClientAdapter, message: str | bytes) -> bool:
    payload = message.encode() if isinstance(message, str) else message
    return adapter.event_marker in payload


def ping_reply(adapter: ClientAdapter, message: str | bytes) -> str | None:
    ping = adapter.text_ping
    return ping[1] if ping is not None and message == ping[0] else None


@dataclass
class WorkerReport:
    connected: int = 0
    frames: int = 0
    first_frame: float = math.inf
    last_frame: float = 0.0
    probe_receipts: list[tuple[int, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connect_seconds: float = 0.0


@dataclass
class FleetReport:
    connected: int
    frames: int
    first_frame: float
    last_frame: float
    probe_receipts: list[tuple[int, float]]
    errors: list[str]
    connect_seconds: float


async def _client(
    adapter: ClientAdapter,
    index: int,
    probe: bool,
    report: WorkerReport,
    ready: asyncio.Event,
    counted: list[wsclient.RawClient],
) -> None:
    try:
        ws = await wsclient.connect(adapter.url(index), adapter.headers(index))
    except Exception as exc:
        report.errors.append(f"connect {index}: {exc!r}")
        ready.set()
        return
    try:
        await adapter.handshake(ws, index)
        report.connected += 1
        if not probe:
            counted.append(ws)
        ready.set()
        receipts = report.probe_receipts

        def on_message(message: str | bytes) -> None:
            if is_event(adapter, message):
                now = time.monotonic()
                report.frames += 1
                report.first_frame = min(report.first_frame, now)
                report.last_frame = now
                if probe:
                    event_id = adapter.event_id(message)
                    if event_id is not None:
                        receipts.append((event_id, now))
            else:
                reply = ping_reply(adapter, message)
                if reply is not None:
                    ws.send_nowait(reply)

        ws.on_message(on_message)
        await ws.closed.wait()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        report.errors.append(f"client {index}: {exc!r}")
    finally:
        ready.set()
        ws.close()


FRAME_COUNTER_SOURCE = Path(__file__).with_name("frame_counter.c")


def build_frame_counter() -> Path:
    """Compile `frame_counter.c` (once per version of it) and return the program's path."""
    source = FRAME_COUNTER_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    program = Path(tempfile.gettempdir()) / f"switchboard-frame-counter-{digest}"
    if not program.exists():
        building = program.with_suffix(f".{os.getpid()}")
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(building), str(FRAME_COUNTER_SOURCE)], check=True
        )
        building.replace(program)
    return program


class FrameCounter:
    """The C program counting the frames of the clients a worker hands over to it."""

    def __init__(self, program: Path, adapter: ClientAdapter, fds: list[int]) -> None:
        self.sockets = len(fds)
        ping, pong = adapter.text_ping or ("", "")
        self._process = subprocess.Popen(
            [str(program), adapter.event_marker.decode(), ping, pong, *map(str, fds)],
            pass_fds=fds,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def counts(self) -> tuple[int, float, float, int, int]:
        """(frames, first frame's time or inf, last frame's time, sockets open, errors)."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("c\n")
        self._process.stdin.flush()
        frames, first, last, open_sockets, errors = self._process.stdout.readline().split()
        return int(frames), float(first) or math.inf, float(last), int(open_sockets), int(errors)

    def stop(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write("q\n")
        self._process.stdin.close()
        self._process.wait(10)


def _worker_report(report: WorkerReport, counter: FrameCounter | None) -> WorkerReport:
    """The worker's own counts (probes, and frames before the hand-over) with the counter's."""
    if counter is None:
        return report
    frames, first, last, open_sockets, failed_pongs = counter.counts()
    errors = list(report.errors)
    if open_sockets < counter.sockets:
        errors.append(f"frame counter: {counter.sockets - open_sockets} sockets closed early")
    if failed_pongs:
        errors.append(f"frame counter: {failed_pongs} pongs could not be sent")
    return replace(
        report,
        frames=report.frames + frames,
        first_frame=min(report.first_frame, first),
        last_frame=max(report.last_frame, last),
        errors=errors,
    )


@dataclass(frozen=True)
class WorkerPlan:
    """What one client worker process is to do."""

    adapter: ClientAdapter
    indexes: list[int]
    probes: set[int]
    concurrency: int
    counter_program: Path


async def _worker_main(conn: Connection, plan: WorkerPlan) -> None:
    """Connects and subscribes the worker's clients, then hands all but the probes to a
    `FrameCounter`: the probes stay here, decoding each frame to time it."""
    loop = asyncio.get_running_loop()
    adapter, probes = plan.adapter, plan.probes
    report = WorkerReport()
    gate = asyncio.Semaphore(plan.concurrency)
    tasks: list[asyncio.Task[None]] = []
    counted: list[wsclient.RawClient] = []
    started = time.monotonic()

    async def start(index: int) -> None:
        async with gate:
            ready = asyncio.Event()
            tasks.append(
                asyncio.create_task(
                    _client(adapter, index, index in probes, report, ready, counted)
                )
            )
            await ready.wait()

    await asyncio.gather(*(start(i) for i in plan.indexes))
    report.connect_seconds = time.monotonic() - started
    fds = [ws.detach() for ws in counted if not ws.closed.is_set()]
    counter = FrameCounter(plan.counter_program, adapter, fds) if fds else None
    for fd in fds:
        os.close(fd)  # the counter holds its own copies
    conn.send(("ready", report.connected, report.errors[:5]))
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command[0] == "counts":
            conn.send(("counts", _worker_report(report, counter).frames))
        elif command[0] == "stop":
            final = _worker_report(report, counter)
            if counter is not None:
                counter.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.send(("report", final))
            return


def _worker_entry(conn: Connection, plan: WorkerPlan) -> None:
    raise_fd_limit(2 * len(plan.indexes) + 256)
    asyncio.run(_worker_main(conn, plan))


class ClientFleet:
    """N websocket clients over `processes` worker processes, `probes` of them decoding frames.

    Workers are started with the "spawn" method (no inherited event loop or sockets), which
    imports the main module again: a script that uses a fleet must guard its entry point with
    `if __name__ == "__main__":`.
    """

    def __init__(
        self,
        adapter: ClientAdapter,
        clients: int,
        processes: int = 1,
        probes: int = 50,
        concurrency: int = 100,
    ) -> None:
        self.adapter = adapter
        self.clients = clients
        self.processes = max(1, min(processes, clients))
        step = max(1, clients // max(1, probes)) if probes else clients + 1
        self.probes = {i for i in range(0, clients, step)} if probes else set()
        self.concurrency = concurrency
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    async def start(self, wait_seconds: float = 300) -> int:
        """Start the workers and connect every client; returns how many are subscribed."""
        counter_program = build_frame_counter()
        context = multiprocessing.get_context("spawn")
        for w in range(self.processes):
            indexes = list(range(w, self.clients, self.processes))
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker_entry,
                args=(
                    child,
                    WorkerPlan(
                        self.adapter,
                        indexes,
                        self.probes & set(indexes),
                        self.concurrency,
                        counter_program,
                    ),
                ),
                daemon=True,
            )
            process.start()
            self._workers.append((process, parent))
        connected = 0
        for _process, conn in self._workers:
            kind, count, errors = await self._recv(conn, wait_seconds)
            assert kind == "ready"
            connected += count
            for error in errors:
                print(f"  client error: {error}", file=sys.stderr)
        return connected

    async def _recv(self, conn: Connection, wait_seconds: float) -> Any:
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, conn.poll, wait_seconds)
        if not ready:
            raise TimeoutError("a client worker did not answer")
        return conn.recv()

    async def frames(self) -> int:
        total = 0
        for _process, conn in self._workers:
            conn.send(("counts",))
            kind, count = await self._recv(conn, 60)
            total += count
        return total

    async def wait_for(self, expected: int, idle_timeout: float = 5.0) -> int:
        """Wait until `expected` frames arrived, or none arrived for `idle_timeout` seconds."""
        last, last_change = -1, time.monotonic()
        while True:
            count = await self.frames()
            if count >= expected:
                return count
            if count != last:
                last, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > idle_timeout:
                return count
            await asyncio.sleep(0.05)

    async def stop(self) -> FleetReport:
        reports: list[WorkerReport] = []
        for _process, conn in self._workers:
            conn.send(("stop",))
            kind, report = await self._recv(conn, 60)
            reports.append(report)
        for process, conn in self._workers:
            process.join(10)
            conn.close()
        self._workers.clear()
        return FleetReport(
            connected=sum(r.connected for r in reports),
            frames=sum(r.frames for r in reports),
            first_frame=min((r.first_frame for r in reports), default=math.inf),
            last_frame=max((r.last_frame for r in reports), default=0.0),
            probe_receipts=[x for r in reports for x in r.probe_receipts],
            errors=[e for r in reports for e in r.errors],
            connect_seconds=max((r.connect_seconds for r in reports), default=0.0),
        )

    def kill(self) -> None:
        for process, _conn in self._workers:
            process.kill()
        self._workers.clear()


# --- fan-out results and tables ----------------------------------------------------------


@dataclass
class FanoutResult:
    """One fan-out run; the same columns for Switchboard and for the peer."""

    system: str
    processes: int
    clients: int
    events: int
    rate: float
    delivered: int
    seconds: float
    latency: Latency
    cpu_percent: float
    rss_mib: float

    @property
    def expected(self) -> int:
        return self.clients * self.events

    @property
    def frames_per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.delivered == self.expected


def fanout_result(
    system: str,
    processes: int,
    clients: int,
    events: int,
    rate: float,
    sent_at: dict[int, float],
    fleet: FleetReport,
    cpu_percent: float,
    rss_mib: float,
) -> FanoutResult:
    """Latency from each probe receipt to its event's send time; throughput over the window."""
    latencies = [at - sent_at[i] for i, at in fleet.probe_receipts if i in sent_at]
    first_sent = min(sent_at.values(), default=0.0)
    seconds = max(fleet.last_frame - first_sent, 0.0) if fleet.frames else 0.0
    return FanoutResult(
        system,
        processes,
        clients,
        events,
        rate,
        fleet.frames,
        seconds,
        Latency.of(latencies),
        cpu_percent,
        rss_mib,
    )


async def measure_fanout(
    system: str,
    server_pids: Sequence[int],
    adapter: ClientAdapter,
    send: Callable[[int], Awaitable[None]],
    *,
    clients: int,
    events: int,
    rate: float,
    probes: int = 50,
    client_processes: int = 1,
) -> FanoutResult:
    """The fan-out measurement, the same for every system: connect and subscribe `clients`,
    `send(i)` `events` events at `rate`, wait until every client has every frame (or none has
    come for a while), and report throughput, latency, CPU and RSS of `server_pids`."""
    raise_fd_limit(clients + 1024)
    fleet = ClientFleet(adapter, clients, processes=client_processes, probes=probes)
    connected = await fleet.start()
    if connected != clients:
        fleet.kill()
        raise RuntimeError(f"{system}: only {connected} of {clients} clients subscribed")
    sampler = ProcessSampler(server_pids)
    sampler.start()
    try:
        sent_at = await at_fixed_rate(events, rate, send)
        await fleet.wait_for(clients * events)
    except BaseException:
        fleet.kill()
        raise
    cpu, rss = await sampler.stop()
    report = await fleet.stop()
    for error in report.errors[:5]:
        print(f"  {system} client error: {error}", file=sys.stderr)
    processes = len(server_pids)
    return fanout_result(system, processes, clients, events, rate, sent_at, report, cpu, rss)


FANOUT_COLUMNS = (
    "system",
    "procs",
    "clients",
    "events",
    "rate/s",
    "delivered",
    "frames/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "cpu %",
    "rss MiB",
)


def fanout_row(result: FanoutResult) -> list[str]:
    delivered = f"{result.delivered}/{result.expected}"
    return [
        result.system,
        str(result.processes),
        str(result.clients),
        str(result.events),
        f"{result.rate:g}",
        delivered,
        f"{result.frames_per_second:,.0f}",
        f"{result.latency.p50:.1f}",
        f"{result.latency.p99:.1f}",
        f"{result.latency.max:.1f}",
        f"{result.cpu_percent:.0f}",
        f"{result.rss_mib:.0f}",
    ]


def print_fanout(title: str, results: Sequence[FanoutResult]) -> None:
    print_table(title, FANOUT_COLUMNS, [fanout_row(r) for r in results])


def print_comparison(ours: Sequence[FanoutResult], peer: Sequence[FanoutResult]) -> None:
    """Side by side per process count: frames/s ratio and p99 of both."""
    rows = []
    peer_by_procs = {r.processes: r for r in peer}
    for mine in ours:
        other = peer_by_procs.get(mine.processes)
        if other is None:
            continue
        ratio = (
            mine.frames_per_second / other.frames_per_second
            if other.frames_per_second
            else math.inf
        )
        rows.append(
            [
                str(mine.processes),
                f"{mine.frames_per_second:,.0f}",
                f"{other.frames_per_second:,.0f}",
                f"{ratio:.2f}x",
                f"{mine.latency.p99:.1f}",
                f"{other.latency.p99:.1f}",
            ]
        )
    rate = f" at {ours[0].rate:g} events/s" if ours else ""
    print_table(
        f"{ours[0].system if ours else 'ours'} vs {peer[0].system if peer else 'peer'}{rate}",
        ("procs", "ours frames/s", "peer frames/s", "ratio", "ours p99 ms", "peer p99 ms"),
        rows,
    )


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table (pastes into the README as it is)."""
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)
    ]
    print(f"\n### {title}\n")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in rows:
        cells = [
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def http_session(connections: int = 64) -> aiohttp.ClientSession:
    """The load generator's HTTP client (aiohttp: it shares the machine with the servers under
    test, so it must cost little; every benchmark uses the same one)."""
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


# --- server processes --------------------------------------------------------------------


@dataclass
class ServedProcess:
    """A server child process listening on a loopback port."""

    port: int
    process: Any  # subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except Exception:
                self.process.kill()
                self.process.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: Sequence[str], env: dict[str, str], port: int, log: Any = None) -> ServedProcess:
    """Start `args`, a server that will listen on `port` (see `wait_healthy`)."""
    import subprocess

    process = subprocess.Popen(
        list(args),
        cwd=REPO,
        env=env,
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
    )
    return ServedProcess(port, process)


async def wait_healthy(served: ServedProcess, wait_seconds: float = 60) -> ServedProcess:
    """Wait until the server's /healthz answers 200."""
    import httpx

    deadline = time.monotonic() + wait_seconds
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if served.process.poll() is not None:
                raise RuntimeError(f"server on port {served.port} exited")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{served.base_url}/healthz")).status_code == 200:
                    return served
            if time.monotonic() > deadline:
                served.stop()
                raise TimeoutError(f"server on port {served.port} did not become healthy")
            await asyncio.sleep(0.1)
