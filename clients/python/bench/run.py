"""Benchmarks of the Python guard against a live Keyport, side by side.

    KEYPORT_BIN=/tmp/sdk-bin/keyport clients/python/.venv/bin/python -m bench.run   # from clients/python

Measures, in one run on this machine:

1. requests/s of a Starlette hello-world under uvicorn (one worker), loaded
   by ``wrk``: bare, behind ``KeyportMiddleware`` on a cache hit, and with
   the cache off (every request calls Keyport);
2. the same three as in-process calls of the ASGI app per second (no
   sockets: the guard's share of the work, undiluted by HTTP);
3. the cost of a cache hit: ``authenticate_request_async`` and the sync
   ``SessionCache.get_session``, in microseconds per call;
4. revocation-to-refusal latency, p50/p99 over ``--rounds`` revocations:
   from ``RevokeSession`` returning until the guard refuses the token;
5. JWT verifications per second on one core vs the cached session check,
   when the server issues access tokens (``keyport.jwt``).

``--quick`` makes every count tiny (a smoke run, as test.sh may do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from keyport import AsyncKeyportClient, KeyportClient, bearer_metadata  # noqa: E402
from keyport.cache import AsyncSessionCache, CacheConfig, SessionCache  # noqa: E402
from keyport.v1 import session_service_pb2, user_service_pb2  # noqa: E402
from keyport.web.guard import Refused, authenticate_request, authenticate_request_async  # noqa: E402
from tests.conftest import running_keyport  # noqa: E402

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sign_up(client: KeyportClient, email: str) -> str:
    return client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD)).session.token


def sign_in(client: KeyportClient, email: str) -> str:
    return client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD)).session.token


# -- 1. HTTP throughput -------------------------------------------------------


def wrk(url: str, token: str, seconds: int, connections: int) -> Dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout
    numbers: Dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            numbers["rps"] = float(parts[1])
        elif parts[:1] == ["Latency"]:
            numbers["latency_ms"] = _ms(parts[1])
        elif "Non-2xx" in line:
            numbers["non_2xx"] = float(parts[-1])
    return numbers


def _ms(value: str) -> float:
    for suffix, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * scale
    return float(value)


def http_throughput(address: str, token: str, seconds: int, connections: int, rounds: int) -> Dict[str, Dict[str, Any]]:
    """The three apps run side by side; ``wrk`` loads them in turn, ``rounds``
    times, so that a change in the machine's load hits all three alike.
    Each figure is the median of its rounds."""
    ports = {mode: free_port() for mode in MODES}
    apps = [
        subprocess.Popen([sys.executable, "-m", "bench.app", mode, address, str(port)], cwd=HERE, stdout=subprocess.DEVNULL)
        for mode, port in ports.items()
    ]
    try:
        for port in ports.values():
            _wait_http(f"http://127.0.0.1:{port}/")
            wrk(f"http://127.0.0.1:{port}/", token, 1, connections)  # warm: the cache fills, connections open
        runs: Dict[str, List[Dict[str, float]]] = {mode: [] for mode in MODES}
        for _ in range(rounds):
            for mode, port in ports.items():
                runs[mode].append(wrk(f"http://127.0.0.1:{port}/", token, seconds, connections))
    finally:
        for app in apps:
            app.terminate()
            app.wait(10)
    return {
        mode: {
            **{key: statistics.median(run[key] for run in results) for key in results[0]},
            "rps_rounds": [run["rps"] for run in results],
        }
        for mode, results in runs.items()
    }


MODES = ("bare", "cached", "uncached")


def _wait_http(url: str) -> None:
    import urllib.request

    for _ in range(500):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError as err:
            if getattr(err, "code", None):  # an HTTP answer (401): it listens
                return
            time.sleep(0.02)
    raise RuntimeError(f"{url} never answered")


# -- 2. in-process ASGI calls -------------------------------------------------


async def asgi_calls_per_second(address: str, token: str, calls: int) -> Dict[str, float]:
    from bench.app import build

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: List[int] = []

    async def send(message: Dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    apps = {mode: build(mode, address) for mode in MODES}
    for mode, app in apps.items():
        await app(dict(scope), receive, send)  # the guarded ones make their cache now
        if mode != "bare":
            await (await app.cache()).wait_until_live()
        for _ in range(min(calls, 200)):
            await app(dict(scope), receive, send)
    # Rounds in turn, as for HTTP; the median of five per variant.
    rates: Dict[str, List[float]] = {mode: [] for mode in MODES}
    for _ in range(5):
        for mode, app in apps.items():
            statuses.clear()
            n = calls // 5 if mode != "uncached" else max(calls // 100, 20)
            start = time.perf_counter()
            for _ in range(n):
                await app(dict(scope), receive, send)
            rates[mode].append(n / (time.perf_counter() - start))
            assert set(statuses) == {200}, f"{mode}: {set(statuses)}"
    for mode, app in apps.items():
        if mode != "bare":
            await app.aclose()
    return {mode: statistics.median(values) for mode, values in rates.items()}


# -- 3. cache-hit cost ----------------------------------------------------------


async def hit_cost_async(address: str, token: str, calls: int) -> float:
    async with AsyncKeyportClient(address) as client, AsyncSessionCache(client) as cache:
        await cache.wait_until_live()
        auth = f"Bearer {token}"
        await authenticate_request_async(cache, authorization=auth)
        start = time.perf_counter()
        for _ in range(calls):
            await authenticate_request_async(cache, authorization=auth, client_ip="127.0.0.1", user_agent="bench")
        elapsed = time.perf_counter() - start
        assert cache.stats().hits >= calls
        return elapsed / calls * 1e6


def hit_cost_sync(client: KeyportClient, token: str, calls: int) -> Dict[str, float]:
    with SessionCache(client) as cache:
        cache.wait_until_live()
        cache.get_session(token)
        start = time.perf_counter()
        for _ in range(calls):
            cache.get_session(token)
        get_session = (time.perf_counter() - start) / calls * 1e6
        auth = f"Bearer {token}"
        start = time.perf_counter()
        for _ in range(calls):
            authenticate_request(cache, authorization=auth, client_ip="127.0.0.1", user_agent="bench")
        guard = (time.perf_counter() - start) / calls * 1e6
        return {"get_session_us": get_session, "guard_us": guard}


# -- 4. revocation-to-refusal ---------------------------------------------------


async def revocation_latency(address: str, email: str, laptop: str, rounds: int) -> Dict[str, float]:
    """Revokes a cached session ``rounds`` times and times how long after
    ``RevokeSession`` returned the guard refuses it. The moment is the one
    the cache applied the revocation (its ``apply`` is wrapped to note it:
    polling for it would keep the GIL from grpc's poller thread, which
    delivers the event, and skew what is measured); the guard's next check
    is then asserted to refuse."""
    since_return: List[float] = []
    since_call: List[float] = []
    async with AsyncKeyportClient(address) as client, AsyncSessionCache(client) as cache:
        await cache.wait_until_live()
        applied: Dict[str, float] = {}
        arrived = asyncio.Event()
        apply = cache.state.apply

        def noting(message: Any) -> None:
            apply(message)
            if message.WhichOneof("event") == "session_revoked":
                applied[message.session_revoked.session_id] = time.perf_counter()
                arrived.set()

        cache.state.apply = noting  # type: ignore[method-assign]
        for _ in range(rounds):
            signed_in = await client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD))
            token, session_id = signed_in.session.token, signed_in.session.session.id
            auth = f"Bearer {token}"
            for _ in range(2):
                assert not isinstance(await authenticate_request_async(cache, authorization=auth), Refused)
            arrived.clear()
            called = time.perf_counter()
            await client.sessions.RevokeSession(
                session_service_pb2.RevokeSessionRequest(session_id=session_id), metadata=bearer_metadata(laptop)
            )
            returned = time.perf_counter()
            while session_id not in applied:
                await asyncio.wait_for(arrived.wait(), 10)
                arrived.clear()
            outcome = await authenticate_request_async(cache, authorization=auth)
            assert isinstance(outcome, Refused) and outcome.reason == "UNAUTHENTICATED", outcome
            # Negative: the event was applied before the response was read.
            since_return.append((applied[session_id] - returned) * 1000)
            since_call.append((applied[session_id] - called) * 1000)
    return {
        "p50_ms_after_return": _pct(since_return, 50),
        "p99_ms_after_return": _pct(since_return, 99),
        "max_ms_after_return": max(since_return),
        "p50_ms_after_call": _pct(since_call, 50),
        "p99_ms_after_call": _pct(since_call, 99),
        "share_applied_before_return": sum(1 for value in since_return if value <= 0) / len(since_return),
    }


def _pct(values: List[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


# -- 5. JWT ---------------------------------------------------------------------


def jwt_rate(address: str, token: str, seconds: float) -> Optional[Dict[str, float]]:
    try:
        from bench.jwt_bench import verifications_per_second
    except ImportError:
        return None
    return verifications_per_second(address, token, seconds)


# -- the run --------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per variant and round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--http-rounds", type=int, default=5, help="interleaved wrk rounds per variant")
    parser.add_argument("--rounds", type=int, default=50, help="revocations timed")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--keyport-env", default="{}", help="extra server settings (JSON)")
    args = parser.parse_args()
    seconds, rounds, calls = (1, 5, 2000) if args.quick else (args.seconds, args.rounds, 50_000)
    http_rounds = 1 if args.quick else args.http_rounds

    data_dir = Path(tempfile.mkdtemp(prefix="keyport-bench-"))
    env = {
        "KEYPORT_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
        # Access tokens for the JWT comparison (bench/jwt_bench.py).
        "KEYPORT_ACCESS_TOKENS__ISSUER": "https://keyport.bench",
        "KEYPORT_ACCESS_TOKENS__AUDIENCES": '["bench"]',
        **json.loads(args.keyport_env),
    }
    report: Dict[str, Any] = {"loadavg_before": os.getloadavg(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        with running_keyport(data_dir, env) as server, KeyportClient(server.address, timeout=10) as client:
            email = f"bench-{os.getpid()}@example.com"
            laptop = sign_up(client, email)
            token = sign_in(client, email)
            if shutil.which("wrk"):
                report["http"] = http_throughput(server.address, token, seconds, args.connections, http_rounds)
                report["loadavg_after_http"] = os.getloadavg()
            report["asgi_in_process_calls_per_s"] = asyncio.run(asgi_calls_per_second(server.address, token, calls))
            report["hit_cost_async_guard_us"] = asyncio.run(hit_cost_async(server.address, token, calls))
            report["hit_cost_sync"] = hit_cost_sync(client, token, calls)
            report["revocation"] = asyncio.run(revocation_latency(server.address, email, laptop, rounds))
            report["jwt"] = jwt_rate(server.address, token, 0.5 if args.quick else 3.0)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report["loadavg_after"] = os.getloadavg()
    http = report.get("http")
    if http:
        report["cached_share_of_bare_http"] = http["cached"]["rps"] / http["bare"]["rps"]
    calls_per_s = report["asgi_in_process_calls_per_s"]
    report["cached_share_of_bare_in_process"] = calls_per_s["cached"] / calls_per_s["bare"]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
