"""Every staff page and the kiosk in a real Chromium at real sizes: axe-core, overflow, screenshots.

One run opens the admin server (``smartshelf admin`` in a subprocess, on a demo store) and the
kiosk endpoint (in process, on the demo products), visits every page at every size, and for each:

* runs axe-core (``axe-playwright-python``, which carries axe-core's script: nothing is fetched),
* checks that the page does not scroll sideways and that no text runs outside its box (and, on the
  kiosk, that it fits the screen and nothing runs under the privacy footer),
* saves a screenshot ``<out>/<page>-<W>x<H>.png``.

The browser tests (tests/admin_web/test_screens.py, tests/device/test_kiosk_browser.py) call the
same functions and fail on a serious/critical axe violation or an overflow. From the command line::

    .venv/bin/python -m tools.screenshots                    # audit, screenshots in artifacts/screens/
    .venv/bin/python -m tools.screenshots --docs docs        # ... and refresh docs/*.png from the run
    .venv/bin/python -m tools.screenshots --json             # the per-page figures as JSON lines
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.servers import free_port, stop_server, wait_for_port

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "screens test password"
#: Staff use a phone and sometimes a laptop.
ADMIN_SIZES: tuple[tuple[int, int], ...] = ((390, 844), (1366, 900))
#: Kiosk screens: landscape HDMI (1920x1080 and a small 1366x900), the usual portrait shelf-edge
#: mount (1080x1920), the official 7" Pi display (800x480); and a phone, as axe's small size.
KIOSK_SIZES: tuple[tuple[int, int], ...] = ((1920, 1080), (1366, 900), (1080, 1920), (800, 480), (390, 844))
SERIOUS = ("serious", "critical")
#: Screenshots copied to docs/ by --docs: (source name, docs name).
DOCS_SHOTS: tuple[tuple[str, str], ...] = (
    ("kiosk-picks-1920x1080.png", "kiosk.png"),
    ("kiosk-picks-1080x1920.png", "kiosk-portrait.png"),
    ("kiosk-picks-800x480.png", "kiosk-7inch.png"),
    ("kiosk-idle-1920x1080.png", "kiosk-idle.png"),
    ("admin-dashboard-390x844.png", "admin-dashboard-phone.png"),
    ("admin-products-390x844.png", "admin-products-phone.png"),
    ("admin-product-delete-390x844.png", "admin-confirm-phone.png"),
    ("admin-store-390x844.png", "admin-store-phone.png"),
)
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", "--font-render-hinting=none"]

# Runs in the page: sideways scroll, text outside the viewport or clipped by its box, and on the
# kiosk whether it fits the screen and whether the privacy footer covers any text.
_LAYOUT_JS = """
() => {
  const vw = document.documentElement.clientWidth, vh = window.innerHeight;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  const text = (el) => [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join("").trim();
  const problems = [];
  const footer = document.querySelector("footer.privacy");
  const fr = footer ? footer.getBoundingClientRect() : null;
  for (const el of document.body.querySelectorAll("*")) {
    const t = text(el);
    if (!t) continue;
    const cs = getComputedStyle(el);
    if (cs.display === "none" || cs.visibility === "hidden") continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (el.closest("[aria-hidden=true], .visually-hidden, details:not([open])")) continue;
    let clamped = false;  // inside a deliberately clamped block (names, pairs): its hidden lines are fine
    for (let a = el.parentElement; a; a = a.parentElement) if (getComputedStyle(a).webkitLineClamp !== "none") clamped = true;
    if (clamped) continue;
    const what = name(el) + " \\"" + t.slice(0, 40) + "\\"";
    if (r.right > vw + 1 || r.left < -1) problems.push(what + " runs outside the page width");
    const deliberate = cs.textOverflow === "ellipsis" || cs.webkitLineClamp !== "none";
    if (!deliberate && cs.overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1)
      problems.push(what + " is cut off sideways");
    if (!deliberate && cs.overflowY === "hidden" && el.scrollHeight > el.clientHeight + 1)
      problems.push(what + " is cut off at the bottom");
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const acs = getComputedStyle(a);
      if (acs.overflowX === "visible" && acs.overflowY === "visible") continue;
      if (acs.webkitLineClamp !== "none") break;
      const ar = a.getBoundingClientRect();
      if (r.bottom > ar.bottom + 1 || r.right > ar.right + 1) problems.push(what + " is cut off by " + name(a));
      break;
    }
    if (fr && !footer.contains(el) && r.bottom > fr.top + 1 && r.top < fr.bottom)
      problems.push(what + " runs under the privacy footer");
  }
  const sizes = {};  // the smallest font size (px) of each kind of kiosk text on show
  for (const sel of [".price", ".slot", ".name", ".pairs", "footer.privacy"]) {
    for (const el of document.querySelectorAll(sel)) {
      if (!el.getClientRects().length) continue;
      const px = parseFloat(getComputedStyle(el).fontSize);
      sizes[sel] = Math.min(sizes[sel] ?? Infinity, px);
    }
  }
  for (const t of document.querySelectorAll("svg.chart text")) {  // chart text as drawn, after scaling
    const svg = t.ownerSVGElement, box = svg.viewBox.baseVal;
    if (!box || !box.width || !svg.getClientRects().length) continue;
    const px = parseFloat(getComputedStyle(t).fontSize) * svg.getBoundingClientRect().width / box.width;
    sizes["svg.chart text"] = Math.min(sizes["svg.chart text"] ?? Infinity, px);
  }
  const sideways = document.documentElement.scrollWidth > vw + 1;
  const fits = document.documentElement.scrollHeight <= vh + 1;
  const counts = {  // what the kiosk shows: cards, loaded pictures, generated cards (pictogram + category name)
    cards: document.querySelectorAll(".card").length,
    pictures: [...document.querySelectorAll(".pic img")].filter(i => i.complete && i.naturalWidth > 0).length,
    pictograms: [...document.querySelectorAll(".pic.made")].filter(p => p.querySelector("svg path") &&
      (p.querySelector(".cat")?.textContent || "").length > 1).length,
  };
  return {sideways, fits, sizes, counts, width: document.documentElement.scrollWidth, problems: problems.slice(0, 20)};
}
"""


@dataclass
class PageReport:
    page: str
    width: int
    height: int
    screenshot: str
    #: axe violations (rules) by impact: {"critical": n, "serious": n, "moderate": n, "minor": n}
    impacts: dict[str, int] = field(default_factory=dict)
    #: the serious and critical ones: "rule-id: help (n nodes)"
    serious: list[str] = field(default_factory=list)
    sideways: bool = False
    fits: bool = True
    problems: list[str] = field(default_factory=list)
    missing: bool = False  # the page does not exist (e.g. a page of a later version)
    #: smallest font size in px of the kiosk's price, slot, name, pairs and privacy line on show
    text_px: dict[str, float] = field(default_factory=dict)
    #: kiosk: cards, loaded pictures and generated cards on show
    counts: dict[str, int] = field(default_factory=dict)
    #: every violated axe rule: id -> impact
    rules: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def _axe() -> Any:
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


def audit(page: Any, name: str, size: tuple[int, int], out_dir: Path, *, axe: Any = None) -> PageReport:
    """Set the viewport, run axe and the layout checks on the current page, save a screenshot."""
    width, height = size
    page.set_viewport_size({"width": width, "height": height})
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    shot = out_dir / f"{name}-{width}x{height}.png"
    page.screenshot(path=str(shot), full_page=True, animations="disabled")
    layout = page.evaluate(_LAYOUT_JS)
    results = (axe or _axe()).run(page, options={"resultTypes": ["violations"]})
    impacts: dict[str, int] = {}
    serious = []
    for v in results.response["violations"]:
        impact = v.get("impact") or "minor"
        impacts[impact] = impacts.get(impact, 0) + 1
        if impact in SERIOUS:
            targets = ", ".join(str(n["target"][0]) for n in v["nodes"][:3])
            serious.append(f"{v['id']} ({impact}): {v['help']}: {len(v['nodes'])} node(s), e.g. {targets}")
    return PageReport(name, width, height, str(shot), impacts, serious, layout["sideways"], layout["fits"],
                      layout["problems"], text_px=layout["sizes"], counts=layout["counts"],
                      rules={v["id"]: v.get("impact") or "minor" for v in results.response["violations"]})


@contextlib.contextmanager
def browser_page(base_url: str | None = None) -> Iterator[Any]:
    """A Playwright page in Debian's Chromium (headless), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=base_url,
                                      reduced_motion="reduce")
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


# ------------------------------------------------------------------------------ admin
def seed_admin(data_dir: Path) -> None:
    """The demo store (products, pictures, slots) with an admin password."""
    from admin_web.accounts import AccountStore
    from device.demo.store import prepare_demo

    prepare_demo(data_dir)  # products with their drawn pictures, slots
    AccountStore(data_dir).set_password("admin", PASSWORD)


@contextlib.contextmanager
def admin_server(data_dir: Path, *, python: str = sys.executable, env: dict[str, str] | None = None,
                 config: Path | None = None) -> Iterator[str]:
    """``smartshelf admin`` on a free loopback port in a subprocess; yields its base URL."""
    port = free_port()
    log_path = data_dir / "server.log"
    extra = ["--config", str(config)] if config is not None else []
    with log_path.open("w") as log:  # a file, not a pipe: an unread pipe could stall the server
        proc = subprocess.Popen(
            [python, "-m", "smartshelf.cli", "admin", *extra, "--data-dir", str(data_dir), "--host", "127.0.0.1",
             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log, text=True, env=env)
        try:
            wait_for_port("127.0.0.1", port, proc, log_path)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(proc)


def login(page: Any, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def _goto(path: str) -> Callable[[Any], bool]:
    def visit(page: Any) -> bool:
        response = page.goto(path)
        return response is not None and response.status < 400
    return visit


def _pair_terminal(page: Any) -> bool:
    page.goto("/terminals")
    page.fill("form[action$='/terminals/pair'] input[name=name]", "Till 1")
    with page.expect_navigation():
        page.locator("form[action$='/terminals/pair'] button[type=submit]").click()
    return page.locator("#pairing-result").count() == 1


class HubScene:
    """The admin as a store's hub (``[admin] store_hub = true``) with two paired shelves, on a real
    Mosquitto where one is installed: ``aisle-1`` joins (online, two decisions) when the store page is
    first opened, ``aisle-2`` stays offline. Without Mosquitto the page shows the hub disconnected."""

    def __init__(self, data_dir: Path, work: Path) -> None:
        from admin_web.store_bus import ShelfRegistry
        from device.demo.store import DEMO_PINS
        from tools.servers import Mosquitto, mosquitto_binary

        slots = list(DEMO_PINS)
        self.work = work
        registry = ShelfRegistry(data_dir)
        self.password = registry.add_shelf("aisle-1", slots[:6])
        registry.add_shelf("aisle-2", slots[6:])
        self.broker = None
        if mosquitto_binary() is not None:
            self.broker = Mosquitto(work / "broker", password_file=registry.password_file,
                                    acl_file=registry.acl_file).start()
        self.config = work / "hub.toml"
        port = self.broker.port if self.broker is not None else free_port()
        self.config.write_text(f"[admin]\nstore_hub = true\nbroker_port = {port}\n")
        self.shelf: Any = None

    def open(self, page: Any) -> bool:
        response = page.goto("/store/")
        if response is None or response.status >= 400:
            return False
        if self.broker is None or self.shelf is not None:
            return True
        import time

        from device.bus import ShelfBus
        from smartshelf.core.config import BusConfig

        cfg = BusConfig(enabled=True, host="127.0.0.1", port=self.broker.port, shelf="aisle-1", user="aisle-1")
        shelf_dir = self.work / "aisle-1"
        self.shelf = ShelfBus(cfg, "aisle-1", data_dir=shelf_dir, factors_path=shelf_dir / "factors.npz",
                              on_command=lambda name, body: {"ok": True}, status=lambda: {"paused": False},
                              password=self.password).start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "online" not in page.locator("tr[data-shelf='aisle-1']").inner_text():
            time.sleep(0.3)
            page.reload()
        self.shelf.publish_event({"time": 1.0, "segment": "female/25-34", "reason": "personalised",
                                  "items": ["SKU-A1"], "slots": ["A1"], "confidence": 0.8})
        self.shelf.publish_event({"time": 2.0, "segment": None, "reason": "low_confidence", "items": ["SKU-B2"],
                                  "slots": ["B2"]})
        while time.monotonic() < deadline and page.locator(".recent-events li").count() < 2:
            time.sleep(0.3)
            page.reload()
        return True

    def close(self) -> None:
        if self.shelf is not None:
            self.shelf.close()
        if self.broker is not None:
            self.broker.stop()


def admin_pages(sku: str, slot: str) -> list[tuple[str, Callable[[Any], bool]]]:
    """(name, open(page) -> exists) for every staff page of a shelf's admin, logged in; the last ones
    change data. The hub's store page: :func:`audit_store`."""
    return [
        ("admin-dashboard", _goto("/")),
        ("admin-products", _goto("/products/")),
        ("admin-product-new", _goto("/products/new")),
        ("admin-product-edit", _goto(f"/products/{sku}/edit")),
        ("admin-product-delete", _goto(f"/products/{sku}/delete")),
        ("admin-import", _goto("/products/import")),
        ("admin-slots", _goto("/slots/")),
        ("admin-slot-remove", _goto(f"/slots/{slot}/delete")),
        ("admin-privacy", _goto("/privacy/")),
        ("admin-notice", _goto("/privacy/notice")),
        ("admin-settings", _goto("/settings/")),
        ("admin-account", _goto("/account/")),
        ("admin-not-found", lambda page: bool(page.goto("/no-such-page"))),
        ("admin-terminals-paired", _pair_terminal),
        ("admin-terminal-revoke", lambda page: _goto(
            "/terminals/" + page.locator("#terminals tbody tr code").first.inner_text() + "/revoke")(page)),
    ]


def audit_admin(out_dir: Path, *, sizes: tuple[tuple[int, int], ...] = ADMIN_SIZES,
                python: str = sys.executable, env: dict[str, str] | None = None) -> list[PageReport]:
    """Every staff page at every size (the login page logged out, the rest logged in)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reports: list[PageReport] = []
    with tempfile.TemporaryDirectory(prefix="smartshelf-screens-") as tmp:
        data_dir = Path(tmp) / "data"
        seed_admin(data_dir)
        from device.demo.store import DEMO_PINS, demo_products

        sku = next(p["sku"] for p in demo_products() if p["slot"])
        slot = next(iter(DEMO_PINS))
        with admin_server(data_dir, python=python, env=env) as url, browser_page(url) as page:
            axe = _axe()
            page.goto("/login")
            reports += [audit(page, "admin-login", size, out_dir, axe=axe) for size in sizes]
            login(page)
            for name, open_page in admin_pages(sku, slot):
                exists = open_page(page)
                if not exists:
                    logger.info("%s: no such page here", name)
                    reports.append(PageReport(name, 0, 0, "", missing=True))
                    continue
                reports += [audit(page, name, size, out_dir, axe=axe) for size in sizes]
    return reports + audit_store(out_dir, sizes=sizes, python=python, env=env)


def audit_store(out_dir: Path, *, sizes: tuple[tuple[int, int], ...] = ADMIN_SIZES,
                python: str = sys.executable, env: dict[str, str] | None = None) -> list[PageReport]:
    """The store page of an admin run as a store's hub (its own server: a lone shelf's admin has no
    store page, nor its menu entry), at every size."""
    with tempfile.TemporaryDirectory(prefix="smartshelf-screens-hub-") as tmp:
        data_dir = Path(tmp) / "data"
        seed_admin(data_dir)
        store = HubScene(data_dir, Path(tmp))
        try:
            with admin_server(data_dir, python=python, env=env, config=store.config) as url, browser_page(url) as page:
                login(page)
                if not store.open(page):
                    return [PageReport("admin-store", 0, 0, "", missing=True)]
                axe = _axe()
                return [audit(page, "admin-store", size, out_dir, axe=axe) for size in sizes]
        finally:
            store.close()


# ------------------------------------------------------------------------------ kiosk
def kiosk_states() -> list[tuple[str, Callable[[Any], None]]]:
    """(name, put the KioskScreen in that state) for each thing a shopper can see."""
    from device.demo.store import demo_products

    products = [p for p in demo_products() if p["slot"] and p["stock"] > 0]

    def item(p: dict[str, Any], image: bool) -> dict[str, Any]:
        return {"sku": p["sku"], "name": p["name"], "brand": p["brand"], "category": p["category"],
                "price": p["price"], "currency": p["currency"], "slot": p["slot"],
                "image": f"{p['sku']}.png" if image else None}

    def picks(screen: Any) -> None:
        items = [item(p, image=True) for p in products[:3]]
        for i, it in enumerate(items):
            others = [q for q in products[3:] if q["sku"] != it["sku"]][i:i + 2]
            it["pairs"] = [{"sku": q["sku"], "name": q["name"], "slot": q["slot"]} for q in others]
        screen.show({"segment": "female/25-34", "personalised": True, "items": items})

    def generated(screen: Any) -> None:
        screen.show({"segment": "generic", "personalised": False,
                     "items": [item(p, image=False) for p in products[3:6]]})

    def idle(screen: Any) -> None:
        try:
            screen.idle([item(p, image=True) for p in products[6:9]])
        except TypeError:  # a version whose idle screen shows no products
            screen.idle()

    def paused(screen: Any) -> None:
        screen.notice("The camera of this shelf is paused.")

    return [("kiosk-picks", picks), ("kiosk-generated", generated), ("kiosk-idle", idle), ("kiosk-paused", paused)]


def audit_kiosk(out_dir: Path, *, sizes: tuple[tuple[int, int], ...] = KIOSK_SIZES) -> list[PageReport]:
    """The kiosk page in each state at each kiosk size (device/display/kiosk.py, in process)."""
    from device.display.kiosk import KioskServer
    from device.display.screen import KioskScreen

    out_dir.mkdir(parents=True, exist_ok=True)
    reports: list[PageReport] = []
    with tempfile.TemporaryDirectory(prefix="smartshelf-kiosk-") as tmp:
        from device.demo.store import prepare_demo

        images = Path(tmp)
        prepare_demo(images)  # the demo products' pictures in <tmp>/images
        screen = KioskScreen("Demo shelf")
        kiosk = KioskServer(screen, port=0, images_dir=images / "images", heartbeat_s=1.0).start()
        try:
            with browser_page(kiosk.url) as page:
                axe = _axe()
                page.goto("/")
                for name, put in kiosk_states():
                    put(screen)
                    _rendered(page, screen.snapshot()[0])
                    reports += [audit(page, name, size, out_dir, axe=axe) for size in sizes]
        finally:
            kiosk.close()
    return reports


def _rendered(page: Any, version: int) -> None:
    """Wait until the page shows state ``version`` and its pictures have loaded."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("() => window.kioskVersion !== undefined", timeout=5000)
    except PlaywrightTimeout:  # a version of the page that does not say which state it shows
        page.wait_for_timeout(1500)
    else:  # the state comes by server-sent event; if that stalls, a reload fetches /state
        try:
            page.wait_for_function("v => window.kioskVersion >= v", arg=version, timeout=10_000)
        except PlaywrightTimeout:
            logger.warning("kiosk state %d did not arrive by event within 10 s; reloading the page", version)
            page.reload()
            page.wait_for_function("v => window.kioskVersion >= v", arg=version, timeout=30_000)
    page.wait_for_function("() => [...document.images].every(i => i.complete)")


# ------------------------------------------------------------------------------ report
def failures(report: PageReport, *, phone_width: int = 390, kiosk: bool = False) -> list[str]:
    """What makes this page fail: serious/critical axe rules, sideways scroll on a phone, overflow."""
    if report.missing:
        return []
    out = list(report.serious)
    if report.width <= phone_width and report.sideways:
        out.append("the page scrolls sideways")
    out += report.problems
    if kiosk and not report.fits:
        out.append("the kiosk does not fit the screen (it scrolls)")
    return [f"{report.page} {report.size}: {x}" for x in out]


def summary(reports: list[PageReport]) -> str:
    lines = [f"{'page':28} {'size':>10} {'critical':>8} {'serious':>8} {'moderate':>8} {'minor':>6}  layout"]
    for r in reports:
        if r.missing:
            lines.append(f"{r.page:28} {'-':>10}  (no such page)")
            continue
        i = r.impacts
        layout = "sideways" if r.sideways else ("overflow" if r.problems else "ok")
        lines.append(f"{r.page:28} {r.size:>10} {i.get('critical', 0):>8} {i.get('serious', 0):>8} "
                     f"{i.get('moderate', 0):>8} {i.get('minor', 0):>6}  {layout}")
    total = {k: sum(r.impacts.get(k, 0) for r in reports) for k in ("critical", "serious", "moderate", "minor")}
    lines.append(f"total (rule violations summed over pages and sizes): {total}")
    return "\n".join(lines)


def copy_docs(out_dir: Path, docs_dir: Path, *, max_height: int = 1920) -> list[Path]:
    """Copy the docs' screenshots from a run; long phone pages are cut to ``max_height`` (the top)."""
    import cv2

    copied = []
    for src, dst in DOCS_SHOTS:
        if not (out_dir / src).exists():
            continue
        picture = cv2.imread(str(out_dir / src), cv2.IMREAD_COLOR)
        if picture is not None and picture.shape[0] > max_height:
            cv2.imwrite(str(docs_dir / dst), picture[:max_height], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        else:
            shutil.copyfile(out_dir / src, docs_dir / dst)
        copied.append(docs_dir / dst)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts/screens"), help="screenshot folder")
    parser.add_argument("--docs", type=Path, default=None, help="also copy the docs' screenshots into this folder")
    parser.add_argument("--only", choices=("admin", "kiosk"), default=None)
    parser.add_argument("--json", action="store_true", help="one JSON line per page and size")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not CHROMIUM.exists():
        print(f"screenshots: error: no Chromium at {CHROMIUM} (run tests/install-tools.sh as root)", file=sys.stderr)
        return 1
    reports: list[PageReport] = []
    if args.only in (None, "admin"):
        reports += audit_admin(args.out)
    if args.only in (None, "kiosk"):
        reports += audit_kiosk(args.out)
    if args.json:
        for r in reports:
            print(json.dumps(asdict(r)))
    else:
        print(summary(reports))
    bad = [f for r in reports for f in failures(r, kiosk=r.page.startswith("kiosk"))]
    for line in bad:
        print("FAIL " + line)
    if args.docs:
        for path in copy_docs(args.out, args.docs):
            print(f"wrote {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
