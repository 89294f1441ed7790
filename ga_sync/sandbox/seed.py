"""Seeding a sandbox from goal specs: each spec's properties, with synthetic traffic for its goals.

Used by `ga-sync sandbox --seed`, the demo, the benchmarks and the tests.

A goal the site sends itself (no `page:`/`from:`/`session:`) fires in the traffic as before. A
goal GA makes does not: its event exists only once its rule or audience does (`ga-sync apply`
creates them; derived.py then makes the events from that moment on). What it is made from is
in the traffic instead: a `page:` goal's page (about 2% of page views, a path built from the
condition and checked against it), a `from:` goal's source event, and for `file_download`
sources a file whose parameters meet the `where` conditions; `session:` goals need nothing
(sessions of several pages and minutes are common).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ga_sync.model import Condition, EventRule, Spec, property_id

__all__ = ["seed_properties", "traffic_for"]

PAGE_WEIGHT = 2.0      # the default pages weigh 98 in all
DOWNLOAD_WEIGHT = 20.0  # the default files weigh 71


def seed_properties(state: Any, specs: Iterable[Spec], *, seed: int = 7) -> list[str]:
    """Create each spec's properties in a sandbox state, with synthetic traffic for its goals.

    Returns the ids created; properties that already exist are left alone.
    """
    created = []
    for n, spec in enumerate(specs):
        for prop in spec.properties:
            pid = property_id(prop)
            if pid in state.properties:
                continue
            traffic = traffic_for(spec, seed=seed + n * 101 + int(pid) % 997)
            state.add_property(property_id=pid, display_name=spec.client,
                               currency_code=spec.currency, traffic=traffic)
            created.append(pid)
    return created


def traffic_for(spec: Spec, *, seed: int) -> dict | None:
    """A traffic profile for a spec's site (None when the Data API side is not installed)."""
    try:
        from ga_sync.sandbox.traffic import DEFAULT_DOWNLOADS, make_traffic
    except ImportError:  # the Data API side of the sandbox is optional for sync
        return None
    sent = [(g.event, g.tier, g.value) for g in spec.goals if g.origin is None]
    rules = [g.origin for g in spec.goals if isinstance(g.origin, EventRule)]
    sources = [r.source for r in rules if r.source != "page_view"
               and r.source not in {e for e, _, _ in sent}]
    traffic = make_traffic(sent, seed=seed, extra_events=list(dict.fromkeys(sources)))
    host = traffic["host"]
    files = [{"path": p, "text": t, "weight": w} for p, t, w in DEFAULT_DOWNLOADS]
    for rule in rules:
        if rule.source == "page_view":
            page = _page(rule.where, host)
            if page is not None:
                if page[0] != host:
                    traffic["host"] = host = page[0]
                if page[1] not in [p["path"] for p in traffic["pages"]]:
                    traffic["pages"].append({"path": page[1], "weight": PAGE_WEIGHT})
        elif rule.source == "file_download":
            made = _file(rule.where, host)
            if made is not None and made["path"] not in [f["path"] for f in files]:
                files.append(made)
    if len(files) > len(DEFAULT_DOWNLOADS):
        traffic["downloads"] = files
    return traffic


def _literal(cond: Condition) -> str:
    """The text a condition's value stands for (a regex stripped of its syntax)."""
    if cond.op != "regex":
        return cond.value
    return re.sub(r"\\(.)", r"\1", re.sub(r"[\^$()\[\]*+?{}|]|\.(?=[*+?])", "", cond.value))


def _page(where: tuple[Condition, ...], host: str) -> tuple[str, str] | None:
    """(host, path) of a page whose page_location meets every condition, or None."""
    conds = [c for c in where if c.field == "page_location"]
    if not conds or len(conds) != len(where):
        return None
    text = _literal(conds[0])
    if "://" in text:
        parts = urlsplit(text)
        host, path = parts.netloc or host, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    else:
        path = text if text.startswith("/") else "/" + text
    path = path.split("?", 1)[0]
    location = f"https://{host}{path}"
    return (host, path) if all(c.matches(location) for c in conds) else None


def _file(where: tuple[Condition, ...], host: str) -> dict[str, Any] | None:
    """A file (traffic `downloads` entry) whose parameters meet every condition, or None."""
    ext = "pdf"
    stem = "/downloads/file"
    for c in where:
        text = _literal(c)
        if c.field == "file_extension":
            ext = text.lstrip(".") or ext
        elif c.field in ("link_url", "file_name"):
            path = urlsplit(text).path if "://" in text else text
            stem = path if path.startswith("/") else "/downloads/" + path
    if stem.endswith("/"):
        stem += "file"
    path = stem if stem.lower().endswith("." + ext.lower()) else f"{stem}.{ext}"
    params = {"file_extension": path.rsplit(".", 1)[-1], "file_name": path,
              "link_url": f"https://{host}{path}", "link_text": "Download"}
    if not all(c.field in params and c.matches(params[c.field]) for c in where):
        return None
    return {"path": path, "text": "Download", "weight": DOWNLOAD_WEIGHT}
