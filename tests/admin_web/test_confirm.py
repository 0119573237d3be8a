"""Every destructive action goes through a confirmation page (a plain form: no JavaScript needed):
the page changes nothing, names what will happen, and its form is the only thing that deletes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest


@pytest.fixture
def store(client: Any, auth: Any, csrf: Any) -> Any:
    auth.login()
    client.post("/slots/save", data={"csrf_token": csrf(), "slot": "A1", "pin": "5"})
    client.post("/products/new", data={"csrf_token": csrf(), "sku": "SCARF-1", "name": "Silk scarf", "price": "10",
                                       "currency": "INR", "stock": "3", "slot": "A1"})
    return client


def _form(page: str) -> tuple[str, str]:
    match = re.search(r'<form method="post" action="([^"]+)" class="actions">.*?<button type="submit"[^>]*>([^<]+)<',
                      page, re.DOTALL)
    assert match, "a confirmation form"
    return match.group(1), match.group(2)


def test_product_slot_and_terminal_are_only_removed_after_confirming(store: Any, csrf: Any) -> None:
    edit = store.get("/products/SCARF-1/edit").data.decode()
    assert 'href="/products/SCARF-1/delete"' in edit and "<button type=\"submit\" class=\"button danger\"" not in edit
    page = store.get("/products/SCARF-1/delete").data.decode()
    assert "Delete Silk scarf?" in page and "slot A1" in page and "cannot be undone" in page
    assert _form(page) == ("/products/SCARF-1/delete", "Delete product")
    assert "data-sku=\"SCARF-1\"" in store.get("/products/").data.decode(), "opening the page deleted nothing"
    assert store.post("/products/SCARF-1/delete", data={"csrf_token": csrf()}).status_code == 302
    assert "data-sku=\"SCARF-1\"" not in store.get("/products/").data.decode()

    slots = store.get("/slots/").data.decode()
    assert 'href="/slots/A1/delete"' in slots
    page = store.get("/slots/A1/delete").data.decode()
    assert "Remove slot A1?" in page and _form(page) == ("/slots/A1/delete", "Remove slot")
    assert 'data-slot="A1"' in store.get("/slots/").data.decode()
    store.post("/slots/A1/delete", data={"csrf_token": csrf()})
    assert 'data-slot="A1"' not in store.get("/slots/").data.decode()

    paired = store.post("/terminals/pair", data={"csrf_token": csrf(), "name": "Till 1", "provider": "generic"})
    terminal_id = re.search(r"<dt>Terminal id</dt><dd><code>([^<]+)</code>", paired.data.decode()).group(1)
    page = store.get(f"/terminals/{terminal_id}/revoke").data.decode()
    assert "Revoke Till 1?" in page and _form(page) == (f"/terminals/{terminal_id}/revoke", "Revoke terminal")
    assert "revoked" not in store.get("/terminals/").data.decode()
    store.post(f"/terminals/{terminal_id}/revoke", data={"csrf_token": csrf()})
    assert "revoked" in store.get("/terminals/").data.decode()
    assert store.get(f"/terminals/{terminal_id}/revoke").status_code == 404, "nothing left to revoke"


def test_confirmation_of_something_missing_is_404(store: Any) -> None:
    assert store.get("/products/NOPE/delete").status_code == 404
    assert store.get("/slots/Z9/delete").status_code == 404
    assert store.get("/terminals/nope/revoke").status_code == 404


class _Text(HTMLParser):
    """Visible text outside <details>, <code> inside <details> excepted, plus every <code>/<pre> outside."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.skip = 0
        self.outside: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "details":
            self.depth += 1
        if tag in ("script", "style", "title", "svg"):
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.depth -= 1
        if tag in ("script", "style", "title", "svg"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth and not self.skip and data.strip():
            self.outside.append(data.strip())


INTERNALS = re.compile(r"\b(admin|recommend|shelf|kiosk|camera)\.[a-z_]+\b|\w+\.json\b|systemctl|journalctl|"
                       r"\bErrno\b|smartshelf [a-z-]+ |\[[a-z_]+\]|generic_share|conversion_window_s")


@pytest.mark.parametrize("path", ["/", "/products/", "/products/new", "/products/import", "/slots/", "/privacy/", "/settings/",
                                  "/terminals/"])
def test_no_config_key_file_name_or_command_outside_an_advanced_block(store: Any, path: str) -> None:
    parser = _Text()
    parser.feed(store.get(path).data.decode())
    leaks = [t for t in parser.outside if INTERNALS.search(t)]
    assert not leaks, f"{path}: {leaks}"
