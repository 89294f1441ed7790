"""Trust: every failure is a message with where, what and what to do, a documented exit code,
no traceback, and nothing lost. CLI tests against the sandbox, one block per rule.

Exit codes: 0 ok, 1 error, 2 changes pending (plan --detailed-exitcode), 130 interrupted.
"""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from ga_sync.cli import app
from ga_sync.periods import last_days
from ga_sync.sandbox.traffic import make_traffic

SPEC = """\
client: Trust Shop
property: {pid}
currency: {currency}
goals:
  - {{event: purchase, tier: macro, value: event}}
  - {{event: sign_up, tier: micro, value: 5, counting: once_per_session}}
  - {{event: file_download, tier: micro, value: 0.5}}
"""
GOALS = [("purchase", "macro", None), ("sign_up", "micro", 5.0), ("file_download", "micro", 0.5)]
PID = "864213579"


def run(*args, input=None):
    r = CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
    assert "Traceback" not in r.output and "Traceback" not in (r.stderr or "")
    return r


def add_property(state, pid=PID, currency="EUR", name="Trust Shop"):
    traffic = make_traffic(GOALS, seed=int(pid) % 97, daily_sessions=600)
    return state.add_property(property_id=pid, display_name=name, currency_code=currency,
                              time_zone="Europe/Berlin", traffic=traffic)


@pytest.fixture
def spec_file(ga_env, sandbox_state, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # html's default file goes to the working folder
    add_property(sandbox_state)
    path = tmp_path / "trust.yaml"
    path.write_text(SPEC.format(pid=PID, currency="EUR"))
    return path


def data_requests(sandbox) -> int:
    return sandbox.stats.snapshot()["data_requests"]


def hold_store(path: Path, seconds: float) -> subprocess.Popen:
    """A second process holding the DuckDB file open for writing for `seconds`."""
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(float(sys.argv[2])); c.close()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# --------------------------------------------------------------------------- 1. invalid specs


def test_one_invalid_spec_does_not_block_the_others(spec_file, tmp_path, sandbox_state):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "good.yaml").write_text(spec_file.read_text())
    (folder / "bad.yaml").write_text(SPEC.format(pid="999000111", currency="EURO"))
    r = run("report", folder, "--last-days", "7", "-f", "json", "--no-store")
    assert r.exit_code == 1
    assert [x["client"] for x in json.loads(r.stdout)["reports"]] == ["Trust Shop"]
    assert "bad.yaml:3:11: error" in r.stderr and "skipped" in r.stderr
    assert "exits 1 at the end" in r.stderr

    p = run("plan", folder, "--detailed-exitcode")
    assert p.exit_code == 1  # an invalid spec wins over "changes pending"
    assert "properties/864213579" in p.stdout and "bad.yaml" in p.stderr
    a = run("audit", folder, "--fail-on", "never", "-f", "json")
    assert a.exit_code == 1
    assert {f["property"] for f in json.loads(a.stdout)["findings"]} <= {"properties/864213579"}
    v = run("validate", folder)
    assert v.exit_code == 1 and "nothing was sent to GA" in v.stderr


def test_no_valid_spec_exits_1_before_calling_ga(ga_env, sandbox, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.format(pid=PID, currency="EURO"))
    before = sandbox.stats.snapshot()["requests"]
    for cmd in (["report", bad, "--no-store"], ["plan", bad], ["apply", bad, "--yes"],
                ["audit", bad]):
        r = run(*cmd)
        assert r.exit_code == 1, cmd
        assert "no valid goal spec" in r.stderr and "nothing was sent to GA" in r.stderr
    assert sandbox.stats.snapshot()["requests"] == before


# --------------------------------------------------------------------------- 2. history store


@pytest.mark.parametrize("kind", ["text", "truncated", "empty"])
def test_corrupt_store_is_a_warning_not_a_lost_report(spec_file, tmp_path, kind):
    store = tmp_path / "history.duckdb"
    if kind == "truncated":
        assert run("report", spec_file, "--last-days", "28", "--store", store).exit_code == 0
        store.write_bytes(store.read_bytes()[:5000])
    else:
        store.write_text("" if kind == "empty" else "date,sessions\n2026-01-01,3\n")
    r = run("report", spec_file, "--last-days", "7", "-f", "json", "--store", store)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["reports"][0]["client"] == "Trust Shop"
    assert f"warning: cannot open the history store {store}" in r.stderr
    assert "another ga-sync" not in r.stderr
    assert "report is complete" in r.stderr
    h = run("history", spec_file, "--store", store)
    assert h.exit_code == 1 and str(store) in h.stderr
    for out in (r.stderr, h.stderr):
        if kind == "truncated":  # a broken DuckDB file: moving it aside loses nothing else
            assert f"Move it aside (e.g. mv {store} {store}.bad)" in out
        else:  # someone else's file: never advise moving it
            assert "Move it aside" not in out and f"mv {store}" not in out
            assert "is not a ga-sync history store" in out and "of a new file" in out
            assert "--store PATH names the history store" in out


def test_store_that_is_some_other_file_is_not_to_be_moved(spec_file, tmp_path):
    """`history --store /etc/passwd` must not suggest `mv /etc/passwd /etc/passwd.bad`."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    h = run("history", spec_file, "--store", passwd)
    assert h.exit_code == 1
    assert h.stderr.startswith(f"Error: cannot open the history store {passwd}: the file is "
                               "not a ga-sync history store (not a DuckDB database): name the "
                               "path of a history store, or of a new file.")
    assert f"mv {passwd}" not in h.stderr and "Move it aside" not in h.stderr
    assert passwd.read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_store_that_is_a_folder_or_unwritable_is_a_warning(spec_file, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    r = run("report", spec_file, "--last-days", "7", "--store", folder)
    assert r.exit_code == 0 and "Trust Shop" in r.stdout
    assert "is a folder" in r.stderr
    r = run("report", spec_file, "--last-days", "7", "--store", "/sys/ga-sync-history.duckdb")
    assert r.exit_code == 0 and "Trust Shop" in r.stdout
    assert "/sys/ga-sync-history.duckdb" in r.stderr and "permission" in r.stderr


def test_locked_store_is_a_warning_naming_the_other_process(spec_file, tmp_path):
    store = tmp_path / "history.duckdb"
    assert run("report", spec_file, "--last-days", "7", "--store", store).exit_code == 0
    proc = hold_store(store, 30)
    try:
        r = run("report", spec_file, "--last-days", "7", "-f", "csv", "--store", store)
    finally:
        proc.kill()
        proc.wait()
    assert r.exit_code == 0 and r.stdout.startswith("property,client,")
    assert "another process holds it open for writing" in r.stderr and str(store) in r.stderr


def test_history_reads_while_another_process_writes(spec_file, tmp_path):
    store = tmp_path / "history.duckdb"
    last = last_days(date.today(), 21)
    assert run("report", spec_file, "--start", last.start, "--end", last.end,
               "--store", store).exit_code == 0
    proc = hold_store(store, 1.0)  # like a report saving
    try:
        h = run("history", spec_file, "--store", store, "--weeks", "2", "-f", "json")
    finally:
        proc.wait()
    assert h.exit_code == 0, h.stderr
    assert len(json.loads(h.stdout)["history"][0]["weeks"]) == 2


# --------------------------------------------------------------------------- 3. output files


@pytest.mark.parametrize("target,message", [
    ("missing/r.json", "does not exist"),
    ("a-folder", "is a folder"),
    ("/sys/r.json", "cannot write in the folder /sys"),
])
def test_bad_output_is_refused_before_pulling(spec_file, tmp_path, sandbox, target, message):
    (tmp_path / "a-folder").mkdir()
    before = data_requests(sandbox)
    r = run("report", spec_file, "--last-days", "7", "-f", "json", "-o", target,
            "--store", tmp_path / "h.duckdb")
    assert r.exit_code == 1
    assert message in r.stderr and target.split("/")[0] in r.stderr
    assert data_requests(sandbox) == before
    assert not (tmp_path / "h.duckdb").exists()


def test_full_disk_leaves_no_half_file_and_keeps_the_pull(spec_file, tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    out.write_text("old report\n")
    store = tmp_path / "h.duckdb"

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    r = run("report", spec_file, "--last-days", "7", "-f", "json", "-o", out, "--store", store)
    assert r.exit_code == 1
    assert f"could not write {out}: No space left on device" in r.stderr
    assert f"kept in the history store {store}" in r.stderr
    assert out.read_text() == "old report\n"  # the old file is untouched, no half file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.duckdb", "r.json", "trust.yaml"]
    monkeypatch.undo()
    h = run("history", spec_file, "--store", store, "-f", "json", "--weeks", "2")
    assert h.exit_code == 0


def test_html_default_file_and_output_written_whole(spec_file, tmp_path):
    r = run("report", spec_file, "--last-days", "7", "-f", "html", "--no-store")
    assert r.exit_code == 0, r.stderr
    [html] = list(tmp_path.glob("ga-sync-report-*.html"))
    assert html.read_text().rstrip().endswith("</html>")
    assert not list(tmp_path.glob(".*.tmp"))


def test_dump_output_refuses_to_overwrite_without_force(ga_env, sandbox_state, tmp_path,
                                                         sandbox):
    add_property(sandbox_state)
    out = tmp_path / "dumped.yaml"
    out.write_text("mine\n")
    before = sandbox.stats.snapshot()["requests"]
    r = run("dump", PID, "-o", out)
    assert r.exit_code == 1 and "already exists" in r.stderr and "--force" in r.stderr
    assert out.read_text() == "mine\n" and sandbox.stats.snapshot()["requests"] == before
    r = run("dump", PID, "-o", tmp_path / "nope" / "x.yaml")
    assert r.exit_code == 1 and "does not exist" in r.stderr
    r = run("dump", PID, "-o", out, "--force")
    assert r.exit_code == 0, r.stderr
    assert "client: Trust Shop" in out.read_text()


def schema_text() -> str:
    from ga_sync.cli.schema import schema_text as text
    return text()


def make_node(path: Path, kind: str) -> Path:
    """A character device like /dev/null (1, 3) or /dev/full (1, 7), or a FIFO, in tmp_path:
    the real /dev is never touched."""
    import stat
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, {"null": 3, "full": 7}[kind]))
    return path


def is_char_device(path: Path) -> bool:
    import stat
    return stat.S_ISCHR(os.lstat(path).st_mode)


def output_args(command, out, spec, tmp_path):
    return {"schema": ["schema", "-o", out],
            "report": ["report", spec, "--last-days", "7", "-f", "json", "-o", out,
                       "--store", tmp_path / "h.duckdb"],
            "dump": ["dump", PID, "-o", out, "--force"]}[command]


@pytest.mark.parametrize("command", ["schema", "report", "dump"])
def test_output_to_a_device_writes_through_it(spec_file, tmp_path, monkeypatch, command):
    """-o to a device writes to it; the device stays a device (no rename over it), and no
    temporary file is made next to it (a probe in /dev would be one)."""
    dev = make_node(tmp_path / "null", "null")
    import tempfile

    def no_temp(*a, **k):
        raise AssertionError("a temporary file next to a device")

    monkeypatch.setattr(tempfile, "mkstemp", no_temp)
    r = run(*output_args(command, dev, spec_file, tmp_path))
    assert r.exit_code == 0, r.stderr
    assert f"wrote {dev}" in r.stderr and is_char_device(dev)


def test_output_to_a_full_device_is_an_error(spec_file, tmp_path):
    full = make_node(tmp_path / "full", "full")
    r = run("schema", "-o", full)
    assert r.exit_code == 1
    assert f"could not write {full}: No space left on device" in r.stderr
    assert is_char_device(full)
    r = run(*output_args("report", full, spec_file, tmp_path))
    assert r.exit_code == 1
    assert f"could not write {full}: No space left on device" in r.stderr
    assert f"kept in the history store {tmp_path / 'h.duckdb'}" in r.stderr
    assert is_char_device(full) and not list(tmp_path.glob(".*.tmp"))


def test_output_to_a_fifo_nobody_reads_fails_at_once(tmp_path):
    fifo = make_node(tmp_path / "pipe", "fifo")
    r = subprocess.run([sys.executable, "-m", "ga_sync", "schema", "-o", str(fifo)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"could not write {fifo}: it is a named pipe (FIFO) and no process is reading it" \
        in r.stderr
    import stat
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("command", ["schema", "report"])
def test_output_to_a_fifo_reaches_its_reader(spec_file, tmp_path, command):
    import stat
    import threading
    fifo = make_node(tmp_path / "pipe", "fifo")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader before the writer comes
    got = bytearray()

    def read_all():
        import select
        while True:
            select.select([reader], [], [], 30)
            chunk = os.read(reader, 65536)
            if not chunk and got:
                return
            got.extend(chunk)

    t = threading.Thread(target=read_all, daemon=True)
    t.start()
    try:
        r = run(*output_args(command, fifo, spec_file, tmp_path))
        t.join(30)
    finally:
        os.close(reader)
    assert r.exit_code == 0, r.stderr
    if command == "schema":
        assert got.decode() == schema_text()
    else:
        assert json.loads(got)["reports"][0]["client"] == "Trust Shop"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_to_a_socket_is_refused(tmp_path, monkeypatch):
    import socket
    monkeypatch.chdir(tmp_path)  # a short relative path: socket paths are limited to 108 bytes
    s = socket.socket(socket.AF_UNIX)
    s.bind("s.sock")
    try:
        r = run("schema", "-o", "s.sock")
    finally:
        s.close()
    assert r.exit_code == 1 and "s.sock is a socket" in r.stderr


@pytest.mark.parametrize("command", ["schema", "report", "dump"])
def test_output_through_a_symlink_updates_its_target(spec_file, tmp_path, command):
    target = tmp_path / "target.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to("target.json")
    r = run(*output_args(command, link, spec_file, tmp_path))
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == "target.json"
    assert target.read_text() != "old\n" and link.read_text() == target.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_output_through_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.json"
    link.symlink_to("sub/new.json")
    r = run("schema", "-o", link)
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and (tmp_path / "sub" / "new.json").read_text() == schema_text()


def test_dump_refuses_a_symlink_to_an_existing_file_without_force(ga_env, sandbox_state,
                                                                  tmp_path):
    add_property(sandbox_state)
    (tmp_path / "mine.yaml").write_text("mine\n")
    link = tmp_path / "link.yaml"
    link.symlink_to("mine.yaml")
    r = run("dump", PID, "-o", link)
    assert r.exit_code == 1 and "already exists" in r.stderr
    assert (tmp_path / "mine.yaml").read_text() == "mine\n" and link.is_symlink()


@pytest.mark.parametrize("mode", ["pipe", "append"])
def test_output_to_dev_stdout_writes_to_standard_output(tmp_path, mode):
    """/dev/stdout is written through, never renamed over; a file opened with >> keeps what
    it had."""
    assert os.path.islink("/dev/stdout")
    cmd = [sys.executable, "-m", "ga_sync", "schema", "-o", "/dev/stdout"]
    if mode == "pipe":
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out = r.stdout
    else:
        log = tmp_path / "log.txt"
        log.write_text("before\n")
        with open(log, "a") as f:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
        out = log.read_text()
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert out == ("" if mode == "pipe" else "before\n") + schema_text()
    assert os.path.islink("/dev/stdout")


# --------------------------------------------------------------------------- 3b. stderr noise


@pytest.fixture
def restore_logging():
    import logging
    names = ("ga_sync", "ga_sync.clients", "urllib3", "google", "requests")
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).filters)) for n in names}
    yield
    for n, (level, filters) in saved.items():
        logging.getLogger(n).setLevel(level)
        logging.getLogger(n).filters[:] = filters


def unknown_enum_warnings():
    """proto-plus's own warning for an enum value it does not know (GA added one)."""
    import warnings

    import proto
    from proto.marshal.rules.enums import EnumRule

    class CountingMethod(proto.Enum):
        COUNTING_METHOD_UNSPECIFIED = 0
        ONCE_PER_EVENT = 1

    with warnings.catch_warnings(record=True) as caught:
        EnumRule(CountingMethod).to_python(7)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_noise_is_quiet_without_verbose(restore_logging, caplog, verbose):
    import logging
    import warnings

    from ga_sync.transport import Circuit
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert run(*(["-v"] if verbose else []), "schema").exit_code == 0
        noise = unknown_enum_warnings()
    level = logging.WARNING if verbose else logging.ERROR
    for name in ("urllib3", "google", "requests"):
        assert logging.getLogger(name).level == level, name
    assert bool(noise) == verbose
    if verbose:
        assert noise == ["Unrecognized CountingMethod enum value: 7"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="ga_sync.test-none"):
        logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=2)) after "
                                                            "connection broken")
        circuit = Circuit(threshold=2)
        circuit.failure("analyticsdata.googleapis.com", "connection", "properties/1")
        circuit.failure("analyticsdata.googleapis.com", "connection", "properties/2")
        logging.getLogger("ga_sync.clients").warning("quota ledger %s cannot be used", "x")
    lines = [r.getMessage() for r in caplog.records]
    assert any("quota ledger" in m for m in lines)  # not a duplicate of an error: kept
    assert any("Retrying" in m for m in lines) == verbose
    assert any("is down" in m for m in lines) == verbose  # the command's error says it


# --------------------------------------------------------------------------- 3c. progress


def test_progress_lines_come_out_in_order(monkeypatch):
    """Worker threads call advance at once: the numbers print 1, 2, 3 ... never [2/n] first."""
    import threading
    import time

    import typer

    from ga_sync.cli.base import Progress
    lines: list[str] = []

    def slow_echo(message="", err=False, **kw):
        time.sleep(0.0005)  # widen the window between counting and printing
        lines.append(message)

    monkeypatch.setattr(typer, "echo", slow_echo)
    workers, each = 8, 25
    bar = Progress(workers * each, "planning")
    start = threading.Barrier(workers)

    def work(i):
        start.wait()
        for j in range(each):
            bar.advance(f"properties/{i}{j}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = [int(line[1:line.index("/")]) for line in lines]
    assert numbers == list(range(1, workers * each + 1))


# --------------------------------------------------------------------------- 4. money


def ga_event_value(url: str, pid: str, period, event: str) -> float:
    """The event's eventValue straight from the (sandbox) Data API: no ga-sync code involved."""
    body = {"dateRanges": [{"startDate": period.start.isoformat(),
                            "endDate": period.end.isoformat()}],
            "dimensions": [{"name": "eventName"}], "metrics": [{"name": "eventValue"}],
            "dimensionFilter": {"filter": {"fieldName": "eventName",
                                           "stringFilter": {"value": event}}}}
    answer = requests.post(f"{url}/v1beta/properties/{pid}:runReport", json=body,
                           timeout=30).json()
    return sum(float(r["metricValues"][0]["value"]) for r in answer.get("rows", []))


@pytest.fixture
def usd_property(ga_env, sandbox_state, tmp_path):
    """A property reporting in USD, and a spec for it in EUR."""
    add_property(sandbox_state, pid="864213580", currency="USD")
    path = tmp_path / "eur.yaml"
    path.write_text(SPEC.format(pid="864213580", currency="EUR"))
    return path


def test_currency_mismatch_keeps_event_values_out_of_totals(usd_property, sandbox, tmp_path):
    r = run("report", usd_property, "--last-days", "14", "-f", "json", "--no-store")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)["reports"][0]
    period = type("P", (), {"start": date.fromisoformat(rep["start"]),
                            "end": date.fromisoformat(rep["end"])})
    usd = ga_event_value(sandbox.url, "864213580", period, "purchase")
    assert usd > 0
    goals = {g["event"]: g for g in rep["goals"]}
    assert (rep["currency"], rep["property_currency"]) == ("EUR", "USD")
    assert goals["purchase"]["currency"] == "USD" and goals["purchase"]["in_total"] is False
    assert goals["purchase"]["value"] == pytest.approx(usd)
    assert goals["sign_up"]["currency"] == "EUR" and goals["sign_up"]["in_total"] is True
    assert rep["macro"]["value"] == 0
    micro = goals["sign_up"]["conversions"] * 5 + goals["file_download"]["conversions"] * 0.5
    assert rep["micro"]["value"] == pytest.approx(micro)
    assert rep["total_value"] == pytest.approx(micro)
    assert "currency-mismatch" in [w["code"] for w in rep["warnings"]]
    table = run("report", usd_property, "--last-days", "14", "--no-store").stdout
    assert f"{usd:,.2f} USD (not in total)" in table and "(GA reports in USD)" in table
    rows = run("report", usd_property, "--last-days", "14", "-f", "csv", "--no-store").stdout
    purchase = next(line for line in rows.splitlines() if ",purchase," in line)
    assert purchase.endswith(",USD,false")
    html = run("report", usd_property, "--last-days", "14", "-f", "html", "-o",
               tmp_path / "r.html", "--no-store")
    assert html.exit_code == 0
    assert f"{usd:,.2f} USD (not in total)" in (tmp_path / "r.html").read_text()


def test_fx_converts_event_values_into_the_spec_currency(usd_property, sandbox):
    r = run("report", usd_property, "--last-days", "14", "-f", "json", "--no-store",
            "--fx", "USD:EUR=0.92")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)["reports"][0]
    period = type("P", (), {"start": date.fromisoformat(rep["start"]),
                            "end": date.fromisoformat(rep["end"])})
    usd = ga_event_value(sandbox.url, "864213580", period, "purchase")
    goals = {g["event"]: g for g in rep["goals"]}
    assert goals["purchase"]["value"] == pytest.approx(usd * 0.92)
    assert (goals["purchase"]["currency"], goals["purchase"]["in_total"]) == ("EUR", True)
    assert goals["purchase"]["fx_rate"] == 0.92
    micro = goals["sign_up"]["conversions"] * 5 + goals["file_download"]["conversions"] * 0.5
    assert rep["total_value"] == pytest.approx(usd * 0.92 + micro)
    assert "converted" in [w["code"] for w in rep["warnings"]]
    # The inverse rate works too: 1 EUR = 1/0.92 USD.
    inv = run("report", usd_property, "--last-days", "14", "-f", "json", "--no-store",
              "--fx", f"EUR:USD={1 / 0.92!r}")
    assert json.loads(inv.stdout)["reports"][0]["total_value"] == pytest.approx(rep["total_value"])


@pytest.mark.parametrize("fx,message", [
    ("USD-EUR", "write FROM:TO=RATE"),
    ("USD:EUR=abc", "above 0"),
    ("USD:EUR=-1", "above 0"),
    ("USD:EUR=nan", "above 0"),
    ("USD:EURO=1", "not an ISO 4217"),
])
def test_bad_fx_is_refused_before_pulling(usd_property, sandbox, fx, message):
    before = sandbox.stats.snapshot()["requests"]
    r = run("report", usd_property, "--no-store", "--fx", fx)
    assert r.exit_code == 1 and message in r.stderr
    assert sandbox.stats.snapshot()["requests"] == before


def test_history_keeps_unconverted_values_out_of_its_totals(usd_property, tmp_path):
    store = tmp_path / "h.duckdb"
    last = last_days(date.today(), 21)
    assert run("report", usd_property, "--start", last.start, "--end", last.end,
               "--store", store).exit_code == 0
    weeks = json.loads(run("history", usd_property, "--store", store, "--weeks", "2",
                           "-f", "json").stdout)["history"][0]["weeks"]
    assert all(w["macro_value"] == 0 for w in weeks)  # purchase values are USD: not summed
    assert all(w["currency"] == "EUR" for w in weeks if w["days"])


# --------------------------------------------------------------------------- 5. numbers


def test_json_never_holds_nan_and_minus_zero_prints_as_zero():
    from ga_sync.model import MACRO
    from ga_sync.render.report import fmt_money, report_json, report_table
    from ga_sync.periods import Period
    from ga_sync.report import GoalResult, ReportResult, TierResult

    goal = GoalResult("refund", MACRO, 0.0, math.nan, -0.0, "once_per_event")
    tier = TierResult(0.0, math.inf, math.nan, -0.0)
    r = ReportResult("properties/1", "Zero", Period(date(2026, 1, 5), date(2026, 1, 11)), "EUR",
                     "sessions", 0, 0, [goal], tier, tier, -0.0, math.nan)

    def refuse(name):
        raise AssertionError(f"{name} in JSON")

    data = json.loads(report_json([r]), parse_constant=refuse)
    rep = data["reports"][0]
    assert rep["value_per_session"] is None and rep["macro"]["rate"] is None
    assert rep["goals"][0]["rate"] is None and str(rep["total_value"]) == "0.0"
    table = report_table([r])
    assert "-0.00" not in table and "0.00 EUR" in table
    assert fmt_money(-0.0, "EUR") == "0.00 EUR" and fmt_money(-0.004, "EUR") == "0.00 EUR"
    assert fmt_money(-1.5, "EUR") == "-1.50 EUR"


# --------------------------------------------------------------------------- 6. dates


@pytest.mark.parametrize("args,message", [
    (["--start", "0001-01-01", "--end", "2020-01-01", "--compare", "previous"], "2015-08-14"),
    (["--start", "0001-01-01", "--end", "0001-01-01", "--compare", "previous"], "2015-08-14"),
    (["--start", "2020-01-01", "--end", "9999-12-31"], "ends after today"),
    (["--start", "9999-12-31", "--end", "9999-12-31", "--compare", "previous"], "ends after today"),
    (["--start", "2015-08-13", "--end", "2015-08-20"], "starts before 2015-08-14"),
    (["--start", "2015-08-14", "--end", "2015-08-20", "--compare", "previous"],
     "previous period would compare with 2015-08-07..2015-08-13"),
    (["--last-days", "3650", "--compare", "previous"], "2015-08-14"),
])
def test_dates_ga4_cannot_have_are_clear_errors(spec_file, sandbox, args, message):
    before = sandbox.stats.snapshot()["requests"]
    r = run("report", spec_file, *args, "--no-store")
    assert r.exit_code == 1 and message in r.stderr
    assert "OverflowError" not in r.stderr
    assert sandbox.stats.snapshot()["requests"] == before


@pytest.mark.parametrize("value", ["20261101", "2026-W45-1", "2026-305", "2026-11-1",
                                   "2026-11-01T00:00", "\u0662\u0660\u0662\u0666-11-01"])
def test_dates_only_in_the_form_help_names(spec_file, sandbox, value):
    """Python 3.11's date.fromisoformat takes 20261101 and 2026-W45-1; --help says YYYY-MM-DD."""
    before = sandbox.stats.snapshot()["requests"]
    for args in (["--start", value, "--end", "2026-11-15"],
                 ["--start", "2026-11-01", "--end", value]):
        r = run("report", spec_file, *args, "--no-store")
        flag = args[0] if args[1] == value else args[2]
        assert r.exit_code == 1
        assert f"Error: {flag} {value!r} is not a date; write it as YYYY-MM-DD" in r.stderr
    assert sandbox.stats.snapshot()["requests"] == before


def test_first_ga4_day_is_accepted(spec_file):
    r = run("report", spec_file, "--start", "2015-08-14", "--end", "2015-08-20", "--no-store",
            "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["reports"][0]["start"] == "2015-08-14"


# --------------------------------------------------------------------------- 7. apply


@pytest.fixture
def apply_spec(ga_env, sandbox_state, tmp_path, monkeypatch):
    monkeypatch.setenv("GA_SYNC_JOURNAL", str(tmp_path / "journal.jsonl"))
    record = add_property(sandbox_state)
    path = tmp_path / "trust.yaml"
    path.write_text(SPEC.format(pid=PID, currency="EUR"))
    return path, record


def events(record) -> set[str]:
    return {k.event_name for k in record.key_events.values()}


def test_journal_is_checked_before_the_question(apply_spec, tmp_path, monkeypatch):
    path, record = apply_spec
    journal = tmp_path / "journal-folder"
    journal.mkdir()
    monkeypatch.setattr("ga_sync.cli.sync._can_ask", lambda: True)
    r = run("apply", path, "--journal", journal, input="y\n")
    assert r.exit_code == 1
    assert "is a folder" in r.stderr and "Apply these changes?" not in r.stdout
    assert events(record) == {"purchase"}


def test_ctrl_c_at_the_question_exits_130_nothing_applied(apply_spec, monkeypatch):
    path, record = apply_spec
    monkeypatch.setattr("ga_sync.cli.sync._can_ask", lambda: True)

    def interrupt(prompt=""):
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", interrupt)
    r = run("apply", path)
    assert r.exit_code == 130
    assert "Interrupted: nothing applied." in r.stderr
    assert events(record) == {"purchase"}


@pytest.mark.parametrize("answer,code", [("", 1), ("n\n", 1), ("\n", 1), ("y\n", 0)])
def test_answers_at_the_question(apply_spec, monkeypatch, answer, code):
    path, record = apply_spec
    monkeypatch.setattr("ga_sync.cli.sync._can_ask", lambda: True)
    r = run("apply", path, input=answer)
    assert r.exit_code == code, r.stderr
    if code:
        assert "Nothing applied" in r.stderr and events(record) == {"purchase"}
        if not answer:
            assert "end of input" in r.stderr
    else:
        assert events(record) == {"purchase", "sign_up", "file_download"}


# --------------------------------------------------------------------------- 8. tickets


def test_failed_property_names_property_and_client_on_stderr(spec_file, tmp_path):
    gone = tmp_path / "gone.yaml"
    gone.write_text(SPEC.format(pid="111222333", currency="EUR").replace("Trust Shop", "Gone Co"))
    r = run("report", spec_file, gone, "--last-days", "7", "-f", "json", "--no-store")
    assert r.exit_code == 1
    assert "error: properties/111222333 (Gone Co):" in r.stderr
    data = json.loads(r.stdout)
    assert data["errors"][0]["property"] == "properties/111222333"
    assert data["errors"][0]["client"] == "Gone Co"
    assert [x["client"] for x in data["reports"]] == ["Trust Shop"]


def test_extends_outside_the_tree_needs_GA_SYNC_EXTENDS_PATH(tmp_path, monkeypatch):
    """A shared base in another folder is refused until that folder is named, then it loads."""
    shared = tmp_path / "shared"
    specs = tmp_path / "specs"
    shared.mkdir()
    specs.mkdir()
    (shared / "_agency.yaml").write_text(
        "goals:\n  - event: newsletter_signup\n    tier: micro\n    value: 2\n")
    (specs / "client.yaml").write_text(
        "client: Shared Base Ltd\nproperties: [123456789]\ncurrency: EUR\n"
        "extends: ../shared/_agency.yaml\n"
        "goals:\n  - event: purchase\n    tier: macro\n    value: event\n")
    monkeypatch.delenv("GA_SYNC_EXTENDS_PATH", raising=False)
    refused = run("validate", specs)
    assert refused.exit_code == 1
    assert "outside the spec folder" in refused.output and "GA_SYNC_EXTENDS_PATH" in refused.output
    monkeypatch.setenv("GA_SYNC_EXTENDS_PATH", str(shared))
    allowed = run("validate", specs)
    assert allowed.exit_code == 0, allowed.output
    assert "ok: 1 spec, 1 property, 2 goals" in allowed.output
