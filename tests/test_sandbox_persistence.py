"""The sandbox's state file and its write-ahead log: an acknowledged write survives a killed
sandbox, a log is replayed once, and the log is folded into the file on close."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState

URL = re.compile(r"listening on (http://\S+)")


def start_sandbox(state: Path) -> tuple[subprocess.Popen[str], str]:
    """`ga-sync sandbox --state STATE --port 0` in its own process; (process, base URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ga_sync", "sandbox", "--state", str(state), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"sandbox exited {proc.returncode}")
        m = URL.search(line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError("sandbox did not start")


def key_events(url: str, pid: str) -> dict[str, dict]:
    answer = requests.get(f"{url}/v1beta/properties/{pid}/keyEvents", params={"pageSize": 200},
                          timeout=10)
    answer.raise_for_status()
    return {ke["eventName"]: ke for ke in answer.json().get("keyEvents", [])}


def test_acknowledged_writes_survive_a_killed_sandbox(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    proc, url = start_sandbox(state)
    try:
        made = requests.post(f"{url}/_sandbox/properties", json={"display_name": "kill me"},
                             timeout=10).json()
        pid = made["id"]
        created = {}
        for i in range(20):
            r = requests.post(f"{url}/v1beta/properties/{pid}/keyEvents", timeout=10, json={
                "eventName": f"goal_{i:02d}", "countingMethod": "ONCE_PER_SESSION",
                "defaultValue": {"numericValue": i + 0.5, "currencyCode": "EUR"}})
            assert r.status_code == 200, r.text
            created[f"goal_{i:02d}"] = r.json()
        # An update and a delete are acknowledged writes too.
        patched = requests.patch(f"{url}/v1beta/{created['goal_03']['name']}", timeout=10,
                                 params={"updateMask": "countingMethod"},
                                 json={"countingMethod": "ONCE_PER_EVENT"})
        assert patched.status_code == 200, patched.text
        assert requests.delete(f"{url}/v1beta/{created['goal_07']['name']}",
                               timeout=10).status_code == 200
        before = key_events(url, pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert Path(str(state) + ".wal").exists()  # the writes are in the log, not yet in the file

    proc, url = start_sandbox(state)
    try:
        after = key_events(url, pid)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop folds the log into the file
        proc.wait(timeout=30)
    assert after == before
    assert len(after) == 1 + 19 and "goal_07" not in after
    assert after["goal_03"]["countingMethod"] == "ONCE_PER_EVENT"
    assert after["goal_12"]["defaultValue"] == {"numericValue": 12.5, "currencyCode": "EUR"}
    assert not Path(str(state) + ".wal").exists()
    data = json.loads(state.read_text(encoding="utf-8"))
    assert {ke["eventName"] for p in data["properties"] for ke in p["key_events"].values()} \
        == set(after)


def test_the_log_is_replayed_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = SandboxState(path)
    rec = state.add_property(display_name="first", traffic={"model": [1]})
    state.save()  # a new file: written whole
    assert path.exists() and not state.wal_path.exists()  # type: ignore[union-attr]
    kid = state.new_key_event_id()
    rec.key_events[kid] = KeyEvent(name=f"{rec.name}/keyEvents/{kid}", event_name="sign_up",
                                   counting_method=2, custom=True, deletable=True)
    rec.display_name = "renamed"
    other = state.add_property(currency_code="EUR")
    state.deny(other.id)
    state.save()
    assert state.wal_path.exists()  # type: ignore[union-attr]
    # Another process opening the files now (this one "killed") sees every saved change.
    again = SandboxState(path)
    assert again.property(rec.id).display_name == "renamed"
    assert again.property(rec.id).key_events[kid] == rec.key_events[kid]
    assert again.property(rec.id).traffic == {"model": [1]}
    assert again.denied == {other.id} and again.properties[other.id].currency_code == "EUR"
    assert again.new_key_event_id() == state.new_key_event_id()  # ids go on where they were
    # Opening folded the log into the file: the old log is not replayed a second time.
    assert not again.wal_path.exists()  # type: ignore[union-attr]
    del again.properties[other.id]
    again.save()
    third = SandboxState(path)
    assert other.id not in third.properties and rec.id in third.properties


def test_a_record_cut_short_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = SandboxState(path)
    rec = state.add_property()
    state.save()
    rec.display_name = "saved"
    state.save()
    rec.display_name = "never acknowledged"
    state.save()
    wal = state.wal_path
    assert wal is not None
    raw = wal.read_bytes()
    wal.write_bytes(raw[:-25])  # the last record torn in the middle by a crash
    assert SandboxState(path).property(rec.id).display_name == "saved"


def test_reset_and_accounts_replay(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = SandboxState(path)
    state.add_property()
    state.save()
    state.reset()
    account = state.add_account("After reset")
    rec = state.add_property(account=account)
    state.save()
    again = SandboxState(path)
    assert list(again.properties) == [rec.id]
    assert [a.display_name for a in again.accounts.values()] == ["After reset"]


def test_close_folds_the_log_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = SandboxState(path)
    rec = state.add_property()
    state.save()
    with SandboxServer(state) as server:
        r = requests.post(f"{server.url}/v1beta/properties/{rec.id}/keyEvents", timeout=10,
                          json={"eventName": "lead", "countingMethod": "ONCE_PER_EVENT"})
        assert r.status_code == 200
    assert state.wal_path.exists()  # type: ignore[union-attr]
    state.close()
    assert not state.wal_path.exists()  # type: ignore[union-attr]
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [ke["eventName"] for ke in data["properties"][0]["key_events"].values()] \
        == ["purchase", "lead"]


def test_a_long_log_is_compacted(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = SandboxState(path)
    rec = state.add_property(traffic={"padding": "x" * 20_000})
    state.save()
    for i in range(200):  # each save logs the whole property (~20 KB): > 1 MiB in all
        rec.display_name = f"name {i}"
        state.save()
    assert state.wal_path.stat().st_size < 1 << 20  # type: ignore[union-attr]
    assert SandboxState(path).property(rec.id).display_name == "name 199"


def test_in_memory_state_notes_nothing() -> None:
    state = SandboxState()
    rec = state.add_property()
    rec.key_events["1"] = KeyEvent(event_name="x")
    state.save()
    assert state.wal_path is None and not state._pending
