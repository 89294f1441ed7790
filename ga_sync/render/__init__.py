"""Output formats: plans (plan.py), reports (report.py, html.py) and audit findings (audit.py).

Renderers return strings; they never print.
"""

from ga_sync.render.plan import plan_json, plan_markdown, plan_text, to_json

__all__ = ["plan_json", "plan_markdown", "plan_text", "to_json"]
