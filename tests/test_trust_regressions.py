"""Reproductions of the "trust" issue: inputs and surroundings that made ga-sync leak, lie or crash.

Each test runs the real command line in a subprocess (so a hang can be killed, a traceback seen
and the exit code is the process's) and asserts the documented behaviour: a clear error and
exit 1 (0 when the run is fine, 130 interrupted), no traceback, nothing secret in the output,
and nothing changed when the command refuses.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState
from ga_sync.sandbox.traffic import make_traffic

PID = "246813579"
SPEC = """\
client: Trust Shop
property: {pid}
currency: {currency}
goals:
  - {{event: purchase, tier: macro, value: event}}
  - {{event: sign_up, tier: micro, value: {value}, counting: once_per_session}}
"""
LAST_WEEK = ["--last-week"]


@dataclass
class Result:
    args: list[str]
    code: int | None  # None: killed after the timeout
    out: str
    err: str
    seconds: float

    @property
    def both(self) -> str:
        return self.out + self.err

    def tail(self) -> str:
        return (f"\n$ ga-sync {' '.join(self.args)}\nexit {self.code} after {self.seconds:.1f}s"
                f"\n--- stdout (tail) ---\n{self.out[-2000:]}\n--- stderr (tail) ---\n"
                f"{self.err[-2000:]}")


def cli(*args: Any, env: dict[str, str] | None = None, timeout: float = 60.0,
        cwd: Path | None = None) -> Result:
    """`python -m ga_sync ARGS` with only the given GA_SYNC_* variables; killed after `timeout`."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("GA_SYNC_")}
    full.update(PYTHONUNBUFFERED="1", COLUMNS="200")
    full.update(env or {})
    argv = [str(a) for a in args]
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ga_sync", *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full, text=True,
                            errors="replace", cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code = None
    return Result(argv, code, out, err, time.monotonic() - start)


def expect(r: Result, code: int, *, contains: tuple[str, ...] = (),
           absent: tuple[str, ...] = ()) -> None:
    """Exit `code`, no traceback, each of `contains` (case-insensitive), none of `absent`."""
    print(r.tail())  # shown for passing tests too with `pytest -rP`
    assert r.code is not None, f"still running after {r.seconds:.0f}s (killed){r.tail()}"
    assert "Traceback" not in r.both, f"a traceback{r.tail()}"
    assert r.code == code, f"exit {r.code}, want {code}{r.tail()}"
    for text in contains:
        assert text.lower() in r.both.lower(), f"{text!r} not in the output{r.tail()}"
    for text in absent:
        assert text not in r.both, f"{text!r} leaked into the output{r.tail()}"


def expect_error(r: Result, *mentions: str, absent: tuple[str, ...] = ()) -> None:
    """Exit 1 with a one-screen error on stderr that names each of `mentions`."""
    expect(r, 1, contains=mentions, absent=absent)
    assert r.err.strip(), f"exit 1 without a message on stderr{r.tail()}"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- sandbox fixtures


@pytest.fixture
def env(sandbox: SandboxServer, tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess talking to the `sandbox` fixture, with its files in tmp_path."""
    return {"GA_SYNC_ADMIN_ENDPOINT": sandbox.url, "GA_SYNC_DATA_ENDPOINT": sandbox.url,
            "GA_SYNC_CREDENTIALS": "anonymous", "GA_SYNC_JOURNAL": str(tmp_path / "journal.jsonl"),
            "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "home" / "data")}


@pytest.fixture
def shop(sandbox_state: SandboxState, sandbox: SandboxServer, tmp_path: Path) -> Path:
    """A USD property with traffic for purchase and sign_up, and its spec (USD) in tmp_path."""
    traffic = make_traffic([("purchase", "macro", None), ("sign_up", "micro", 5.0)], seed=5,
                           daily_sessions=600)
    sandbox_state.add_property(property_id=PID, display_name="Trust Shop", currency_code="USD",
                               traffic=traffic)
    return write(tmp_path / "specs" / "trust-shop.yaml", SPEC.format(pid=PID, currency="USD", value=5))


def key_events(state: SandboxState, pid: str = PID) -> set[str]:
    with state.lock:
        return {ke.event_name for ke in state.properties[pid].key_events.values()}


# --------------------------------------------------------------------------- extends leaks

FAKE_KEY = ("-----BEGIN PRIVATE KEY-----\nMIIfakeEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
            "-----END PRIVATE KEY-----\n")


@pytest.mark.parametrize("target", ["key.pem", "/etc/passwd", ".env"])
def test_extends_never_echoes_a_file_that_is_not_a_spec(tmp_path: Path, target: str) -> None:
    specs = tmp_path / "agency" / "specs"
    write(tmp_path / "creds" / "key.pem", FAKE_KEY)
    write(specs / ".env", "SECRET=hunter2\nAPI_TOKEN=abc123hunter2\n")
    extends = {"key.pem": "../../creds/key.pem", "/etc/passwd": "/etc/passwd", ".env": ".env"}[target]
    spec = write(specs / "client.yaml", SPEC.format(pid=PID, currency="USD", value=5)
                 + f"extends: {extends}\n")
    r = cli("validate", spec, timeout=30)
    expect_error(r, "client.yaml", absent=("BEGIN PRIVATE KEY", "MIIfake", "hunter2", "root:x:0",
                                           "/bin/bash", "/usr/sbin/nologin"))


# --------------------------------------------------------------------------- money


def test_currencies_are_never_summed_together(shop: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Spec in EUR, property in USD, purchase `value: event`: GA's USD values are either converted
    or kept apart, never added to EUR values under an EUR label; a warning names both."""
    usd = cli("report", shop, *LAST_WEEK, "-f", "json", "--no-store", env=env)
    expect(usd, 0)
    raw_usd = next(g["value"] for g in json.loads(usd.out)["reports"][0]["goals"]
                   if g["event"] == "purchase")
    assert raw_usd and raw_usd > 0, f"the property should have purchase value{usd.tail()}"

    eur_spec = write(tmp_path / "eur" / "trust-shop-eur.yaml",
                     SPEC.format(pid=PID, currency="EUR", value=5))
    r = cli("report", eur_spec, *LAST_WEEK, "-f", "json", "--no-store", env=env)
    expect(r, 0)
    rep = json.loads(r.out)["reports"][0]
    codes = [w["code"] for w in rep["warnings"]]
    currency_warnings = [w for w in rep["warnings"] if "currency" in w["code"]]
    assert currency_warnings, f"no currency warning, warnings are {codes}{r.tail()}"
    assert any("EUR" in w["message"] and "USD" in w["message"] for w in currency_warnings), \
        f"the currency warning should name EUR and USD{r.tail()}"
    goals = {g["event"]: g for g in rep["goals"]}
    purchase, sign_up = goals["purchase"], goals["sign_up"]
    if purchase["value"] is not None and abs(purchase["value"] - raw_usd) < 0.01:  # not converted
        assert purchase.get("currency", "USD") == "USD", f"USD value labelled EUR{r.tail()}"
        mixed = purchase["value"] + sign_up["value"]
        assert abs(rep["total_value"] - mixed) > 0.01, f"USD + EUR summed as EUR{r.tail()}"
        assert abs(rep["macro"]["value"] - purchase["value"]) > 0.01 or rep["currency"] == "USD", \
            f"the macro value is GA's USD labelled {rep['currency']}{r.tail()}"
    table = cli("report", eur_spec, *LAST_WEEK, "--no-store", env=env)
    expect(table, 0, contains=("EUR", "USD"))


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_minus_zero_value_never_prints_as_negative(sandbox_state: SandboxState, shop: Path,
                                                   env: dict[str, str], tmp_path: Path,
                                                   fmt: str) -> None:
    spec = write(tmp_path / "zero" / "zero.yaml", SPEC.format(pid=PID, currency="USD", value="-0.0"))
    r = cli("report", spec, *LAST_WEEK, "-f", fmt, "--no-store", env=env)
    expect(r, 0, absent=("-0.00", "-0.0", "-0 "))
    assert not re.search(r"(?<![\w.])-0(?![.\d])", r.out), f"a negative zero printed{r.tail()}"


# --------------------------------------------------------------------------- history store


@pytest.mark.parametrize("damage", ["random", "truncated", "folder"])
def test_a_damaged_store_does_not_lose_the_report(shop: Path, env: dict[str, str], tmp_path: Path,
                                                  damage: str) -> None:
    store = tmp_path / "store" / "history.duckdb"
    store.parent.mkdir()
    if damage == "random":
        store.write_bytes(os.urandom(64 * 1024))
    elif damage == "truncated":
        expect(cli("report", shop, *LAST_WEEK, "--store", store, env=env), 0)
        data = store.read_bytes()
        store.write_bytes(data[: len(data) // 2])
    else:
        store.mkdir()
    r = cli("report", shop, *LAST_WEEK, "-f", "json", "--store", store, env=env)
    expect(r, 0)
    reports = json.loads(r.out)["reports"]
    assert [x["property"] for x in reports] == [f"properties/{PID}"], r.tail()
    assert "history.duckdb" in r.err and "warning" in r.err.lower(), \
        f"no warning naming the store on stderr{r.tail()}"


# --------------------------------------------------------------------------- output files


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_output_path_that_cannot_be_written(shop: Path, env: dict[str, str], tmp_path: Path,
                                            where: str) -> None:
    target = tmp_path / "nowhere" / "report.json" if where == "missing-folder" else tmp_path
    r = cli("report", shop, *LAST_WEEK, "-f", "json", "--no-store", "-o", target, env=env)
    expect_error(r, str(target))


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_output_path_is_checked_before_pulling(shop: Path, env: dict[str, str], tmp_path: Path,
                                               sandbox: SandboxServer, where: str) -> None:
    """Ideally the -o path is refused before any Data API quota is spent."""
    target = tmp_path / "nowhere" / "report.json" if where == "missing-folder" else tmp_path
    r = cli("report", shop, *LAST_WEEK, "-f", "json", "--no-store", "-o", target, env=env)
    expect_error(r, str(target))
    data_requests = sandbox.stats.snapshot()["data_requests"]
    assert data_requests == 0, f"{data_requests} Data API requests before refusing -o{r.tail()}"


# --------------------------------------------------------------------------- the apply journal


@pytest.mark.parametrize("where", ["a-folder", "read-only-folder", "under-a-file"])
def test_apply_refuses_before_changing_anything_when_the_journal_cannot_be_written(
        shop: Path, env: dict[str, str], tmp_path: Path, sandbox_state: SandboxState,
        where: str) -> None:
    if where == "a-folder":
        journal = tmp_path / "journal-dir"
        journal.mkdir()
    elif where == "read-only-folder":
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        journal = ro / "journal.jsonl"
        if os.geteuid() == 0:  # root writes into 0555 folders; sysfs refuses even root
            journal = Path("/sys/ga-sync-test-journal.jsonl")
            try:
                journal.open("a").close()
            except OSError:
                pass
            else:
                journal.unlink()
                pytest.skip("no folder here is read-only for root")
    else:
        write(tmp_path / "a-file", "x")
        journal = tmp_path / "a-file" / "journal.jsonl"
    before = key_events(sandbox_state)
    assert "sign_up" not in before
    r = cli("apply", shop, "--yes", "--journal", journal, env=env)
    expect_error(r, str(journal))
    assert key_events(sandbox_state) == before, f"apply changed the property{r.tail()}"
    pending = cli("plan", shop, "--detailed-exitcode", env=env)
    expect(pending, 2, contains=("sign_up",))


# --------------------------------------------------------------------------- odd spec values


ODD_GOALS = {
    "event-name-superscript": "  - {event: price_per_m², tier: micro, value: 1}\n",
    "value-1e308": "  - {event: sign_up, tier: micro, value: 1e308}\n",
    "value-400-digits": "  - {event: sign_up, tier: micro, value: " + "9" * 400 + "}\n",
}
ODD_PROPERTIES = {"property-int64-overflow": "9223372036854775808", "property-hex": "0x1F",
                  "property-fullwidth": "１２３"}


@pytest.mark.parametrize("case", sorted(ODD_GOALS) + sorted(ODD_PROPERTIES))
def test_odd_values_are_refused_with_a_message(tmp_path: Path, case: str) -> None:
    if case in ODD_GOALS:
        text = ("client: Odd\nproperty: 123456789\ncurrency: USD\ngoals:\n"
                "  - {event: purchase, tier: macro, value: event}\n" + ODD_GOALS[case])
    else:
        text = (f"client: Odd\nproperty: {ODD_PROPERTIES[case]}\ncurrency: USD\ngoals:\n"
                "  - {event: purchase, tier: macro, value: event}\n")
    spec = write(tmp_path / f"{case}.yaml", text)
    expect_error(cli("validate", spec, timeout=30), f"{case}.yaml")


def test_extends_into_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "_loop-a.yaml").symlink_to(tmp_path / "_loop-b.yaml")
    (tmp_path / "_loop-b.yaml").symlink_to(tmp_path / "_loop-a.yaml")
    spec = write(tmp_path / "client.yaml", SPEC.format(pid=PID, currency="USD", value=5)
                 + "extends: _loop-a.yaml\n")
    expect_error(cli("validate", spec, timeout=30), "client.yaml")


def test_extends_chain_1200_deep(tmp_path: Path) -> None:
    base = tmp_path / "bases"
    for i in range(1200):
        nxt = f"extends: _b{i + 1}.yaml\n" if i < 1199 else ""
        write(base / f"_b{i}.yaml", f"{nxt}goals:\n  - {{event: goal_{i}, tier: micro, value: 1}}\n")
    spec = write(base / "client.yaml", SPEC.format(pid=PID, currency="USD", value=5)
                 + "extends: _b0.yaml\n")
    r = cli("validate", spec, timeout=60)
    expect_error(r, absent=("RecursionError", "maximum recursion depth"))
    assert re.search(r"(?i)deep|depth|too long|too many|chain|levels", r.err), \
        f"the message should say the extends chain is too long{r.tail()}"


def test_validate_dev_zero_returns(tmp_path: Path) -> None:
    r = cli("validate", "/dev/zero", timeout=15)
    expect_error(r, "/dev/zero")
    assert r.seconds < 10, f"took {r.seconds:.1f}s{r.tail()}"


def test_validate_a_fifo_returns(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    r = cli("validate", fifo, timeout=15)  # nobody ever writes into it
    expect_error(r, "spec.yaml")
    assert r.seconds < 10, f"took {r.seconds:.1f}s{r.tail()}"


def test_a_20_mb_spec_is_refused_quickly(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    goal = "  - {event: sign_up, tier: micro, value: 1, description: '" + "x" * 200 + "'}\n"
    with spec.open("w") as f:
        f.write("client: Huge\nproperty: 123456789\ncurrency: USD\ngoals:\n")
        while f.tell() < 20 * 1024 * 1024:
            f.write(goal * 1000)
    r = cli("validate", spec, timeout=30)
    expect_error(r, "huge.yaml")
    assert r.seconds < 6, f"took {r.seconds:.1f}s to answer{r.tail()}"


def test_client_yaml_with_capital_extension_is_mentioned(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    write(folder / "ok.yaml", SPEC.format(pid=PID, currency="USD", value=5))
    write(folder / "Client.YAML", SPEC.format(pid="135792468", currency="USD", value=5)
          .replace("Trust Shop", "Capital Client"))
    r = cli("validate", folder, timeout=30)
    assert r.code is not None and "Traceback" not in r.both, r.tail()
    assert "Client.YAML" in r.both, f"Client.YAML silently ignored{r.tail()}"


# --------------------------------------------------------------------------- settings and periods


def test_zero_requests_per_minute_is_refused(shop: Path, env: dict[str, str]) -> None:
    r = cli("plan", shop, env={**env, "GA_SYNC_ADMIN_REQUESTS_PER_MINUTE": "0"}, timeout=30)
    expect_error(r, "GA_SYNC_ADMIN_REQUESTS_PER_MINUTE")


def test_a_period_in_year_one_is_refused(shop: Path, env: dict[str, str]) -> None:
    r = cli("report", shop, "--start", "0001-01-01", "--end", "0001-01-07", "--compare",
            "previous", "--no-store", env=env, timeout=30)
    expect_error(r, "0001-01-01", absent=("OverflowError", "out of range"))


# --------------------------------------------------------------------------- credentials


class _Unauthenticated(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    BODY = json.dumps({"error": {"code": 401, "message": "Request is missing required "
                                 "authentication credential.", "status": "UNAUTHENTICATED"}}).encode()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(401)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def unauthenticated() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthenticated)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("command", ["plan", "properties"])
def test_401_says_credentials(unauthenticated: str, tmp_path: Path, command: str) -> None:
    spec = write(tmp_path / "s.yaml", SPEC.format(pid=PID, currency="USD", value=5))
    env = {"GA_SYNC_ADMIN_ENDPOINT": unauthenticated, "GA_SYNC_DATA_ENDPOINT": unauthenticated,
           "GA_SYNC_CREDENTIALS": "anonymous"}
    r = cli(*([command, spec] if command == "plan" else [command]), env=env, timeout=60)
    expect_error(r, "credentials")


def test_an_oauth_client_secret_file_is_named_as_such(tmp_path: Path) -> None:
    secret = write(tmp_path / "client_secret.json", json.dumps(
        {"installed": {"client_id": "x", "client_secret": "GOCSPX-fakefakefake",
                       "redirect_uris": ["http://localhost"]}}))
    secret.chmod(0o600)
    spec = write(tmp_path / "s.yaml", SPEC.format(pid=PID, currency="USD", value=5))
    port = closed_port()
    env = {"GA_SYNC_ADMIN_ENDPOINT": f"http://127.0.0.1:{port}",
           "GA_SYNC_DATA_ENDPOINT": f"http://127.0.0.1:{port}", "GA_SYNC_CREDENTIALS": str(secret)}
    r = cli("plan", spec, env=env, timeout=30)
    expect_error(r, "client_secret.json", absent=("GOCSPX-fakefakefake", "fakefakefake",
                                                  "type None"))
    assert re.search(r"(?i)oauth|client secret|client[- ]id|desktop app|installed app", r.err), \
        f"the message should say it is an OAuth client file{r.tail()}"


@pytest.mark.parametrize("command", ["plan", "properties"])
def test_a_password_in_an_endpoint_url_is_never_printed(tmp_path: Path, command: str) -> None:
    spec = write(tmp_path / "s.yaml", SPEC.format(pid=PID, currency="USD", value=5))
    url = f"http://user:s3cretpw@127.0.0.1:{closed_port()}"
    env = {"GA_SYNC_ADMIN_ENDPOINT": url, "GA_SYNC_DATA_ENDPOINT": url,
           "GA_SYNC_CREDENTIALS": "anonymous"}
    r = cli("-v", *([command, spec] if command == "plan" else [command]), env=env, timeout=90)
    expect_error(r, absent=("s3cretpw",))


# --------------------------------------------------------------------------- many specs


def test_one_invalid_spec_does_not_stop_the_others_from_planning(
        sandbox_state: SandboxState, env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    for pid, name in (("111111111", "Good One"), ("222222222", "Good Two")):
        sandbox_state.add_property(property_id=pid, display_name=name)
        write(folder / f"{name.split()[1].lower()}.yaml",
              SPEC.format(pid=pid, currency="USD", value=5).replace("Trust Shop", name))
    write(folder / "broken.yaml", "client: Broken\nproperty: 333333333\ncurrency: EURO\ngoals: []\n")
    r = cli("plan", folder, env=env)
    expect_error(r, "broken.yaml")
    for pid, name in (("111111111", "Good One"), ("222222222", "Good Two")):
        assert f"properties/{pid} ({name})" in r.out, f"{name} was not planned{r.tail()}"
    assert r.out.count("+ sign_up") == 2, f"the valid specs' changes are missing{r.tail()}"


def test_dump_never_overwrites_without_force(sandbox_state: SandboxState, shop: Path,
                                            env: dict[str, str], tmp_path: Path) -> None:
    existing = write(tmp_path / "existing.yaml", "# hand-written, keep me\n")
    r = cli("dump", PID, "-o", existing, env=env)
    expect_error(r, "existing.yaml")
    assert existing.read_text() == "# hand-written, keep me\n", f"file overwritten{r.tail()}"


# --------------------------------------------------------------------------- the key-event limit


def test_the_key_event_limit_is_named_in_plan_and_apply(sandbox_state: SandboxState,
                                                        env: dict[str, str], tmp_path: Path) -> None:
    record = sandbox_state.add_property(property_id=PID, display_name="Full House")
    for i in range(30):
        kid = str(30_000_000_000 + i)
        record.key_events[kid] = KeyEvent(name=f"properties/{PID}/keyEvents/{kid}",
                                          event_name=f"old_goal_{i:02}", counting_method=1,
                                          deletable=True, custom=True)
    spec = write(tmp_path / "full.yaml", SPEC.format(pid=PID, currency="USD", value=5)
                 .replace("Trust Shop", "Full House"))
    plan = cli("plan", spec, env=env)
    assert plan.code is not None and "Traceback" not in plan.both, plan.tail()
    assert "limit" in plan.both.lower(), f"plan does not warn about the limit{plan.tail()}"
    apply = cli("apply", spec, "--yes", "--journal", tmp_path / "j.jsonl", env=env)
    expect_error(apply, "limit", absent=("already exists",))
    assert "sign_up" not in key_events(sandbox_state), apply.tail()
