"""Trust under a bad network: one property's answers are mangled, the others still come through.

Three clients, three properties, a sandbox behind `faultproxy.FaultProxy`. For each way an
answer can go wrong (an HTML page with 200 or 502, a truncated body, `{}`, no answer, a reset
connection, a page token that repeats, the wrong JSON shape) one property is mangled and every
command runs as a real process (so a hang can be killed and a traceback seen). Each must:

- exit 1 (the documented code for "a property failed");
- print no traceback;
- still report the two healthy properties in full (plan changes, report numbers, findings);
- name the bad property in its errors, in words, not as a raw exception or an HTML page;
- end in bounded time.

All commands of one mode run at once, each against its own sandbox + proxy where it writes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultproxy import MODES, FaultProxy, api_of, repeat_token, wrong_shape
from ga_sync.sandbox.seed import seed_properties
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState
from ga_sync.spec import load_specs

GOOD_A, BAD, GOOD_B = "411111111", "422222222", "433333333"
CLIENTS = {GOOD_A: "Alpha Outdoor", BAD: "Beta Books", GOOD_B: "Gamma Garden"}
CURRENCY = {GOOD_A: "USD", BAD: "EUR", GOOD_B: "USD"}
GOALS = ["purchase", "sign_up", "generate_lead", "file_download"]
SPEC = """\
client: {client}
properties: [{pid}]
currency: {currency}
goals:
  - {{event: purchase, tier: macro, value: event}}
  - {{event: sign_up, tier: micro, value: 12.5, counting: once_per_session}}
  - {{event: generate_lead, tier: macro, value: 40, counting: once_per_session}}
  - {{event: file_download, tier: micro, value: 1}}
"""
CREATED = ["sign_up", "generate_lead", "file_download"]  # purchase is GA's default key event

#: Every command is killed after this long; a command still running then has hung. The
#: product offers no request timeout setting yet, so this is the (loose) bound for `hang`.
KILL_AFTER = 60.0
#: What a mangled answer may cost at most when GA's answer is simply bad (retries included).
BOUND = 45.0

#: Signs that an error message is a raw exception dump or the proxy's page, not words.
RAW = ["Traceback", "<html", "<!DOCTYPE", "</", "<center>", "JSONDecodeError", "ParseError",
       "Expecting value", "Unterminated string", "json.decoder", "google.protobuf",
       "TypeError", "AttributeError", "KeyError", "ValueError", "IndexError",
       "RemoteDisconnected", "ConnectionResetError", "urllib3", "HTTPConnectionPool",
       "object has no attribute", "$alt=json"]


@dataclass
class Run:
    name: str
    args: list[str]
    code: int | None  # None: killed after KILL_AFTER
    out: str
    err: str
    seconds: float

    def tail(self) -> str:
        return (f"\n$ ga-sync {' '.join(self.args)}\nexit {self.code} after {self.seconds:.1f}s"
                f"\n--- stdout (tail) ---\n{self.out[-2500:]}\n--- stderr (tail) ---\n"
                f"{self.err[-2500:]}")


class World:
    """Three properties with traffic in a sandbox, and a FaultProxy in front of it."""

    def __init__(self, specs_dir: Path) -> None:
        self.state = SandboxState()
        seed_properties(self.state, load_specs([specs_dir]))
        self.sandbox = SandboxServer(self.state).start()
        self.proxy = FaultProxy(self.sandbox.url).start()

    def close(self) -> None:
        self.proxy.stop()
        self.sandbox.stop()

    def key_events(self, pid: str) -> set[str]:
        with self.state.lock:
            return {ke.event_name for ke in self.state.properties[pid].key_events.values()}


@pytest.fixture
def specs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    for pid, client in CLIENTS.items():
        (d / f"{client.split()[0].lower()}.yaml").write_text(
            SPEC.format(client=client, pid=pid, currency=CURRENCY[pid]))
    return d


@pytest.fixture
def worlds(specs_dir: Path) -> Any:
    made: list[World] = []

    def make() -> World:
        made.append(World(specs_dir))
        return made[-1]

    yield make
    for w in made:
        w.close()


def run_cli(name: str, args: list[str], url: str, home: Path, **extra_env: str) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GA_SYNC_")}
    env.update(GA_SYNC_ADMIN_ENDPOINT=url, GA_SYNC_DATA_ENDPOINT=url,
               GA_SYNC_CREDENTIALS="anonymous", GA_SYNC_JOURNAL=str(home / "journal.jsonl"),
               HOME=str(home), XDG_DATA_HOME=str(home / "data"), PYTHONUNBUFFERED="1",
               COLUMNS="200", **extra_env)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ga_sync", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        out, err = proc.communicate(timeout=KILL_AFTER)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code = None
    return Run(name, args, code, out, err, time.monotonic() - start)


def commands(specs_dir: Path, home: Path) -> dict[str, list[str]]:
    return {
        "plan": ["plan", str(specs_dir)],
        "apply": ["apply", str(specs_dir), "--yes", "--journal", str(home / "apply.jsonl")],
        "report_json": ["report", str(specs_dir), "--last-week", "-f", "json", "--no-store"],
        "report_table": ["report", str(specs_dir), "--last-week", "--no-store"],
        "audit_json": ["audit", str(specs_dir), "-f", "json"],
        "dump": ["dump", BAD],
        "properties": ["properties"],
    }


def run_all(mode: str, api: str | None, names: list[str], worlds: Any, specs_dir: Path,
            home: Path) -> tuple[dict[str, Run], dict[str, World]]:
    """Run the named commands at once, apply against a world of its own; mangle BAD in `mode`."""
    shared = worlds()
    where = {n: (worlds() if n == "apply" else shared) for n in names}
    for w in set(where.values()):
        w.proxy.set_mode(BAD, mode, api=api)
    cmds = commands(specs_dir, home)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {n: pool.submit(run_cli, n, cmds[n], where[n].proxy.url, home) for n in names}
        runs = {n: f.result() for n, f in futures.items()}
    for run in runs.values():
        print(run.tail())  # shown for passing tests too with `pytest -rP`
    return runs, where


# --------------------------------------------------------------------------- checks


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if BAD in line]


def assert_clean(message: str, run: Run, what: str) -> None:
    """No raw exception, HTML or protocol detail in `message`, and no line of it a wall of text."""
    found = [m for m in RAW if m in message]
    if found:
        pytest.fail(f"{what} is a raw dump (contains {found}): {message[:600]!r}{run.tail()}",
                    pytrace=False)
    longest = max((len(line) for line in message.splitlines()), default=0)
    if longest > 600:
        pytest.fail(f"{what} has a {longest}-character line{run.tail()}", pytrace=False)


def check_common(run: Run, mode: str, expected: set[int]) -> None:
    assert run.code is not None, f"{run.name} ({mode}) still running after {KILL_AFTER}s{run.tail()}"
    assert "Traceback" not in run.out + run.err, f"{run.name} ({mode}) crashed{run.tail()}"
    assert run.code in expected, f"{run.name} ({mode}) exit {run.code}, want {expected}{run.tail()}"
    if mode != "hang":
        assert run.seconds < BOUND, f"{run.name} ({mode}) took {run.seconds:.0f}s{run.tail()}"


def check_bad_named_on_stderr(run: Run, mode: str) -> None:
    assert error_lines(run.err), f"{run.name} ({mode}): {BAD} not named on stderr{run.tail()}"
    assert_clean(run.err, run, f"{run.name} ({mode}) stderr")


def check_plan(run: Run, mode: str) -> None:
    # `{}` is a valid empty list of key events, so plan may read the property as having none
    check_common(run, mode, {0, 1} if mode == "empty" else {1})
    for pid in (GOOD_A, GOOD_B):
        header = f"properties/{pid} ({CLIENTS[pid]})"
        assert header in run.out, f"plan ({mode}): {header} missing{run.tail()}"
        block = run.out.split(header, 1)[1].split("\n\n", 1)[0]
        for event in CREATED:
            assert re.search(rf"\+ {event}\b", block), (
                f"plan ({mode}): create {event} missing for {pid}{run.tail()}")
    if run.code == 1:
        check_bad_named_on_stderr(run, mode)
        assert_clean(run.out, run, f"plan ({mode}) stdout")
        closing = run.out.strip().splitlines()[-1]
        assert BAD in closing and "could not be read" in closing, (
            f"plan ({mode}): last line should say the property was not read{run.tail()}")


def check_apply(run: Run, mode: str, world: World) -> None:
    check_common(run, mode, {1})
    for pid in (GOOD_A, GOOD_B):
        have = world.key_events(pid)
        assert set(GOALS) <= have, f"apply ({mode}): {pid} has {sorted(have)}{run.tail()}"
    assert re.search(r"Applied [1-9]\d* changes", run.out), f"apply ({mode}){run.tail()}"
    check_bad_named_on_stderr(run, mode)


def check_report_json(run: Run, mode: str) -> None:
    check_common(run, mode, {1})
    try:
        data = json.loads(run.out)
    except ValueError:
        pytest.fail(f"report json ({mode}): stdout is not JSON{run.tail()}")
    reports = {r["property"]: r for r in data.get("reports", [])}
    assert set(reports) == {f"properties/{GOOD_A}", f"properties/{GOOD_B}"}, (
        f"report json ({mode}): reports for {sorted(reports)}{run.tail()}")
    for pid in (GOOD_A, GOOD_B):
        r = reports[f"properties/{pid}"]
        assert r["client"] == CLIENTS[pid] and r["currency"] == CURRENCY[pid], run.tail()
        assert isinstance(r["sessions"], int) and r["sessions"] > 0, run.tail()
        assert [g["event"] for g in r["goals"]] == GOALS, run.tail()
        assert all(isinstance(g["conversions"], (int, float)) for g in r["goals"]), run.tail()
        assert isinstance(r["total_value"], (int, float)), run.tail()
    errors = data.get("errors") or []
    bad = [e for e in errors if e.get("property") == f"properties/{BAD}"]
    assert bad, f"report json ({mode}): no error entry for {BAD}{run.tail()}"
    assert bad[0].get("client") == CLIENTS[BAD], run.tail()
    assert_clean(bad[0]["message"], run, f"report json ({mode}) error message")
    check_bad_named_on_stderr(run, mode)


def check_report_table(run: Run, mode: str) -> None:
    check_common(run, mode, {1})
    for pid in (GOOD_A, GOOD_B):
        line = next((ln for ln in run.out.splitlines()
                     if ln.startswith(f"{CLIENTS[pid]}  properties/{pid}")), None)
        assert line, f"report table ({mode}): no block for {pid}{run.tail()}"
        block = run.out.split(line, 1)[1].split("\n\n\n", 1)[0]
        assert re.search(r"sessions [0-9][0-9,]*", block), run.tail()
        for event in GOALS:
            assert event in block, f"report table ({mode}): {event} missing for {pid}{run.tail()}"
    assert f"{CLIENTS[BAD]}  properties/{BAD}  " not in run.out, (
        f"report table ({mode}): the bad property got a report block{run.tail()}")
    assert BAD in run.out, f"report table ({mode}): 'not included' should name {BAD}{run.tail()}"
    assert_clean(run.out.split("not included", 1)[-1], run, f"report table ({mode}) 'not included'")
    check_bad_named_on_stderr(run, mode)


def check_audit_json(run: Run, mode: str) -> None:
    check_common(run, mode, {1})
    try:
        data = json.loads(run.out)
    except ValueError:
        pytest.fail(f"audit json ({mode}): stdout is not JSON{run.tail()}")
    by_prop: dict[str, list[dict]] = {}
    for f in data.get("findings", []):
        by_prop.setdefault(f["property"], []).append(f)
    assert data.get("summary", {}).get("properties") == 3, run.tail()
    for pid in (GOOD_A, GOOD_B):
        checks = {f["check"] for f in by_prop.get(f"properties/{pid}", [])}
        assert {"missing-key-event"} <= checks, f"audit ({mode}): {pid} got {checks}{run.tail()}"
        assert not checks & {"audit-failed", "no-access"}, f"audit ({mode}): {pid}{run.tail()}"
        missing = {f["subject"] for f in by_prop[f"properties/{pid}"]
                   if f["check"] == "missing-key-event"}
        assert missing == set(CREATED), f"audit ({mode}): {pid} missing {missing}{run.tail()}"
    bad = by_prop.get(f"properties/{BAD}", [])
    failed = [f for f in bad if f["check"] in ("audit-failed", "no-access")]
    assert failed and failed[0]["severity"] == "error", (
        f"audit ({mode}): {BAD} should have an audit-failed finding, has "
        f"{[f['check'] for f in bad]}{run.tail()}")
    assert_clean(failed[0]["message"], run, f"audit ({mode}) finding")


def check_dump(run: Run, mode: str) -> None:
    check_common(run, mode, {1})
    assert "client:" not in run.out, f"dump ({mode}) wrote a spec from a bad answer{run.tail()}"
    check_bad_named_on_stderr(run, mode)


def check_properties(run: Run, mode: str) -> None:
    # the property list is one answer for every property: nothing can be listed when it is bad;
    # `{}` is a valid (empty) list
    check_common(run, mode, {0, 1} if mode == "empty" else {1})
    if run.code == 1:
        lines = [ln for ln in run.err.splitlines() if ln.strip()]
        assert lines, f"properties ({mode}): exit 1 without a message{run.tail()}"
        assert_clean("\n".join(lines), run, f"properties ({mode}) error")


CHECKS = {"plan": check_plan, "report_json": check_report_json,
          "report_table": check_report_table, "audit_json": check_audit_json,
          "dump": check_dump, "properties": check_properties}


# --------------------------------------------------------------------------- the proxy itself


def test_proxy_passes_others_and_mangles_one(fault_proxy_world: Any) -> None:
    """The proxy's own contract, checked with plain HTTP (no ga-sync)."""
    import http.client
    from urllib.parse import urlsplit

    proxy: FaultProxy = fault_proxy_world.proxy

    def get(path: str) -> tuple[int, bytes]:
        u = urlsplit(proxy.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    proxy.set_mode(BAD, "html502")
    status, body = get(f"/v1beta/properties/{GOOD_A}/keyEvents")
    assert status == 200 and b"keyEvents" in body
    status, body = get(f"/v1beta/properties/{BAD}/keyEvents")
    assert status == 502 and body.startswith(b"<html>")
    proxy.set_mode(BAD, "wrong_shape", api="data")
    assert get(f"/v1beta/properties/{BAD}/keyEvents")[0] == 200  # the Admin API passes
    assert api_of(f"/v1beta/properties/{BAD}:batchRunReports") == "data"
    proxy.set_mode(BAD, "repeat_token")
    first = json.loads(get(f"/v1beta/properties/{BAD}/keyEvents?pageSize=200")[1])
    again = get(f"/v1beta/properties/{BAD}/keyEvents?pageSize=200&pageToken={first['nextPageToken']}")
    assert again[0] == 200 and json.loads(again[1]) == first  # the same page, forever
    assert "nextPageToken" not in json.loads(get(f"/v1beta/properties/{GOOD_A}/keyEvents")[1])
    status, body = get("/v1beta/accountSummaries")  # names BAD in its answer: mangled too
    assert json.loads(body)["nextPageToken"] == json.loads(get("/v1beta/accountSummaries")[1])[
        "nextPageToken"]
    proxy.set_mode(BAD, "truncated")
    status, body = get(f"/v1beta/properties/{BAD}")
    with pytest.raises(ValueError):
        json.loads(body)
    proxy.set_mode(BAD, None)
    assert json.loads(get(f"/v1beta/properties/{BAD}")[1])["name"] == f"properties/{BAD}"
    assert json.loads(wrong_shape("/v1beta/properties/1/keyEvents", b"{}")) == {
        "keyEvents": 5, "nextPageToken": 7}
    assert repeat_token("/v1beta/properties/1", b'{"name": "x"}') == b'{"name": "x"}'
    proxy.set_mode(BAD, "hang")  # released when the proxy stops, at the end of the test
    u = urlsplit(proxy.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=0.5)
    with pytest.raises(OSError):
        conn.request("GET", f"/v1beta/properties/{BAD}")
        conn.getresponse()
    conn.close()


@pytest.fixture
def fault_proxy_world(worlds: Any) -> World:
    return worlds()


# --------------------------------------------------------------------------- every mode, every command


@pytest.mark.parametrize("mode", MODES)
def test_one_bad_property_does_not_hide_the_others(mode: str, worlds: Any, specs_dir: Path,
                                                   tmp_path: Path) -> None:
    names = ["plan", "apply", "report_json", "report_table", "audit_json", "dump", "properties"]
    runs, where = run_all(mode, None, names, worlds, specs_dir, tmp_path)
    failures = []
    for name in names:
        try:
            if name == "apply":
                check_apply(runs[name], mode, where[name])
            else:
                CHECKS[name](runs[name], mode)
        except (AssertionError, pytest.fail.Exception) as e:  # check every command, report all
            failures.append(f"[{name}] {e}")
    if failures:
        pytest.fail(f"{len(failures)} of {len(names)} commands failed under {mode}:\n"
                    + "\n\n".join(failures), pytrace=False)


@pytest.mark.parametrize("mode", ["html502", "wrong_shape", "truncated"])
def test_a_bad_data_api_answer_spares_the_admin_side(mode: str, worlds: Any, specs_dir: Path,
                                                     tmp_path: Path) -> None:
    """Only the Data API misbehaves for the property: report and audit still name it and go on;
    plan (Admin API only) is untouched and exits 0."""
    names = ["plan", "report_json", "audit_json"]
    runs, _ = run_all(mode, "data", names, worlds, specs_dir, tmp_path)
    failures = []
    plan = runs["plan"]
    if plan.code != 0 or f"properties/{BAD} ({CLIENTS[BAD]})" not in plan.out:
        failures.append(f"[plan] the Admin API was not mangled, plan should succeed{plan.tail()}")
    for name in ("report_json", "audit_json"):
        try:
            CHECKS[name](runs[name], f"{mode} on the Data API")
        except (AssertionError, pytest.fail.Exception) as e:
            failures.append(f"[{name}] {e}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
