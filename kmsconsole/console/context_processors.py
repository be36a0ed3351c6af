"""The console's navigation: each section appears once its route exists, marked current under its path."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

SECTIONS = (
    ("Keys", "console:keys"),
    ("Principals", "console:principals"),
    ("Audit", "console:audit"),
    ("Access analyzer", "console:analyzer"),
    ("Policy simulator", "console:simulator"),
)


def console_sections(request: HttpRequest) -> dict[str, list[tuple[str, str, bool]]]:
    sections = []
    for label, url_name in SECTIONS:
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        sections.append((label, url, request.path.startswith(url)))
    return {"console_sections": sections}
