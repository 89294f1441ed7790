"""Seeding a sandbox from goal specs: each spec's properties, with synthetic traffic for its goals.

Used by `ga-sync sandbox --seed`, the demo, the benchmarks and the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ga_sync.model import Spec, property_id

__all__ = ["seed_properties"]


def seed_properties(state: Any, specs: Iterable[Spec], *, seed: int = 7) -> list[str]:
    """Create each spec's properties in a sandbox state, with synthetic traffic for its goals.

    Returns the ids created; properties that already exist are left alone.
    """
    try:
        from ga_sync.sandbox.traffic import make_traffic
    except ImportError:  # the Data API side of the sandbox is optional for sync
        make_traffic = None  # type: ignore[assignment]
    created = []
    for n, spec in enumerate(specs):
        for prop in spec.properties:
            pid = property_id(prop)
            if pid in state.properties:
                continue
            traffic = None
            if make_traffic is not None:
                traffic = make_traffic([(g.event, g.tier, g.value) for g in spec.goals],
                                       seed=seed + n * 101 + int(pid) % 997)
            state.add_property(property_id=pid, display_name=spec.client,
                               currency_code=spec.currency, traffic=traffic)
            created.append(pid)
    return created
