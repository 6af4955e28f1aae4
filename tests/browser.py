"""Headless Chromium for the page tests: where it is, how it starts, and a page that records what went wrong."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("FUSION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def watched_page(context):
    """A new page of ``context`` and the list its console errors, page errors and failed requests go into."""
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    return page, problems
