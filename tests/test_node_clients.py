"""A second real client: Google's official Node.js clients drive the sandbox over REST.

`tests/node/drive.js` uses `@google-analytics/admin` (v1beta, and v1alpha for event create rules,
audiences and the change history) and `@google-analytics/data` with `fallback: true` (REST),
`protocol: 'http'` and a pass-through auth client, through key-event list/create/update/delete,
rule list/create/delete, audience create/list/archive, account summaries and reports with
filters, paging and totals; its
numbers are checked here against plain pandas over the sandbox's event log. The Node packages
are installed with `npm ci` from tests/node/package-lock.json when node_modules is missing
(`.ci/run` installs them beforehand).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.traffic import event_log, make_traffic

NODE_DIR = Path(__file__).parent / "node"
PID = "515151515"
START, END = "2025-03-03", "2025-03-16"


def _node_ready() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: the Node.js client test needs both")
    if not (NODE_DIR / "node_modules" / "@google-analytics" / "data").is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def node_run() -> tuple[dict[str, Any], Any]:
    _node_ready()
    from ga_sync.sandbox.state import SandboxState
    state = SandboxState()
    traffic = make_traffic([("purchase", "macro", None), ("sign_up", "micro", None)], seed=21,
                           daily_sessions=800, start="2024-06-01", property_id=PID)
    record = state.add_property(property_id=PID, time_zone="UTC", currency_code="EUR",
                                traffic=traffic)
    with SandboxServer(state) as server:
        env = {**os.environ, "SANDBOX_HOST": server.host, "SANDBOX_PORT": str(server.port),
               "PROPERTY": PID, "START": START, "END": END, "ACCOUNT": record.account}
        done = subprocess.run(["node", "drive.js"], cwd=NODE_DIR, env=env, capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    from datetime import date
    log = event_log(traffic, date.fromisoformat(START), date.fromisoformat(END), "UTC")
    return json.loads(done.stdout), log


def test_node_admin_client_key_event_lifecycle(node_run: tuple[dict[str, Any], Any]) -> None:
    seen = node_run[0]["admin"]
    assert seen["summaries"] == [f"properties/{PID}"]
    assert seen["before"] == ["purchase"] and seen["after"] == ["purchase"]
    assert seen["during"] == ["purchase", "sign_up"]
    assert seen["createdMethod"] == "ONCE_PER_SESSION"
    assert seen["updated"] == {"method": "ONCE_PER_EVENT", "value": 12.5, "currency": "EUR"}
    assert seen["duplicate"] == 409  # the Node REST fallback reports the HTTP status


def test_node_admin_client_rules_and_audiences(node_run: tuple[dict[str, Any], Any]) -> None:
    seen = node_run[0]["machinery"]
    assert seen["streams"] == ["WEB_DATA_STREAM"]
    assert seen["ruleConditions"] == [["event_name", "EQUALS", "page_view"],
                                      ["page_location", "CONTAINS", "/quote/thank-you"]]
    assert seen["rulesDuring"] == ["quote_thank_you"] and seen["rulesAfter"] == 0
    assert seen["badRule"] == 400
    assert seen["audienceTrigger"] == ["engaged_visit", "AUDIENCE_MEMBERSHIP_RENEWED"]
    assert seen["audiencesDuring"] == ["ga-sync: engaged_visit"] and seen["audiencesAfter"] == 0
    assert seen["immutable"] == [400, True]
    # newest first; the caller named by the x-sandbox-actor header, anonymous ones by default
    assert seen["history"][:4] == [["DELETED", "ga-sync@sandbox.invalid", "audiences"],
                                   ["CREATED", "node@agency.example", "audiences"],
                                   ["DELETED", "ga-sync@sandbox.invalid", "eventCreateRules"],
                                   ["CREATED", "node@agency.example", "eventCreateRules"]]


def test_node_data_client_reports(node_run: tuple[dict[str, Any], Any]) -> None:
    seen, log = node_run
    data = seen["data"]
    outside = log[log.country != "Poland"]
    by_device = outside.groupby("device_category", observed=True).session_id.nunique()
    assert data["deviceRowCount"] == len(by_device) == len(data["devicePages"])
    assert dict(data["devicePages"]) == by_device.to_dict()
    assert [s for _, s in data["devicePages"]] == sorted(by_device, reverse=True)
    revenue = outside.loc[outside.event_name == "purchase", "value"].sum()
    assert data["deviceTotals"][0] == outside.session_id.nunique()
    assert data["deviceTotals"][1] == pytest.approx(revenue)
    channels = log.groupby("session_default_channel_group", observed=True).session_id.nunique()
    assert data["channels"] == channels.to_dict()
    german = log.loc[log.country == "Germany", "city"].astype(str).unique()
    assert data["germanCities"] == sorted(german)
    assert data["metadata"] == [375, 86 + 2]  # plus keyEvents:purchase, sessionKeyEventRate:purchase
    assert data["unknownProperty"] == 403  # PERMISSION_DENIED, as GA answers (recorded)
