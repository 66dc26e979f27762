#!/usr/bin/env python3
"""The chat's web page in a real browser: Debian's chromium + chromedriver,
driven by selenium (never a downloaded browser build).

Given a running `sockit chat serve --web ADDR` (the page's URL) and its line
protocol address, it opens two browser sessions and one raw TCP line client
(as `nc` would), all in the same room, and checks that:

- messages go both ways between the browsers and the line client;
- hostile text (`<script>`, `<img onerror>`, an ANSI escape, a bidi override),
  sent from the line client and from a browser, shows as text: no element is
  created, no script runs, no control or override character reaches the page;
- the page loads with no console error (a CSP violation would be one);
- the page is usable at phone width (no horizontal overflow of the body);
- optionally (--kick), a browser member kicked by the operator shows it was
  kicked and stays out (no reconnect loop), and the other page's room count
  drops: the script prints `kick: NICK` on stdout and the caller types
  `/kick NICK` on the server's console;
- optionally (--restart-cmd), the page reconnects after a server restart,
  keeps its nick, goes back to the room it was in and does not ask to join a
  room it is already in.

Screenshots go to OUT (default target/browser/). The last line is
`browser: N passed, N failed`; the exit code is 1 if anything failed.

    python3 tests/browser/chat_browser.py --url http://127.0.0.1:8080/ --tcp 127.0.0.1:7000

Needs: apt-get install chromium chromium-driver; pip install selenium.
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

HOSTILE = [
    ("script", "<script>window.__pwned=1</script>"),
    ("img", '<img src=x onerror="window.__pwned=1">'),
    ("ansi", "\x1b[31mred\x1b[0m"),
    ("bidi", "\u202eevil"),
]


class Result:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn):
        try:
            fn()
        except Exception as e:  # one check failing must not stop the others
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        else:
            self.passed += 1
            print(f"ok   {name}", flush=True)


class LineClient:
    """A raw TCP client of the line protocol, like nc: lines in, lines out."""

    def __init__(self, addr, timeout):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with self.cond:
                    self.lines.append(line.decode("utf-8", "replace").rstrip("\r"))
                    self.cond.notify_all()

    def send(self, text):
        self.sock.sendall(text.encode("utf-8") + b"\n")

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"line client: no line {what}; last: {self.lines[-5:]}")
                self.cond.wait(left)


def browser(width, height):
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


class Page:
    def __init__(self, driver, url, timeout):
        self.d = driver
        self.timeout = timeout
        self.d.get(url)
        self.wait(lambda d: "connected" == self.state(), "connected")

    def wait(self, cond, what, timeout=None):
        try:
            return WebDriverWait(self.d, timeout or self.timeout, poll_frequency=0.05).until(cond)
        except Exception:
            raise TimeoutError(f"page: no {what}; state={self.state()!r}; log tail={self.log_texts()[-5:]}")

    def state(self):
        try:
            return self.d.find_element(By.ID, "state").text.strip()
        except Exception:
            return ""

    def type_line(self, text):
        box = self.d.find_element(By.ID, "input")
        box.clear()
        # send_keys types characters; a script sets values selenium cannot type
        # (control characters), then Enter goes through the real key path.
        self.d.execute_script("arguments[0].value = arguments[1];", box, text)
        box.send_keys(Keys.ENTER)

    def log_texts(self):
        try:
            return self.d.execute_script(
                "return Array.from(document.querySelectorAll('#log li')).map(li => li.textContent);"
            )
        except Exception:
            return []

    def wait_log(self, pred, what, timeout=None):
        return self.wait(lambda d: next((t for t in self.log_texts() if pred(t)), None), what, timeout)

    def room(self):
        return self.d.find_element(By.ID, "room").text.strip()

    def room_count(self, name):
        """The member count the rooms list shows for `name` (None if absent)."""
        return self.d.execute_script(
            """for (const b of document.querySelectorAll('#rooms button')) {
                 if (b.dataset.room === arguments[0]) {
                   const c = b.querySelector('.count');
                   return c ? parseInt(c.textContent.replace(/[^0-9]/g, ''), 10) : null;
                 }
               }
               return null;""", name)

    def me(self):
        return self.d.find_element(By.ID, "me").text.strip()

    def set_nick(self, nick):
        self.type_line(f"/nick {nick}")
        self.wait(lambda d: self.me() == nick, f"nick {nick}")

    def console_errors(self):
        return [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the page, e.g. http://127.0.0.1:8080/")
    ap.add_argument("--tcp", help="the line protocol address HOST:PORT (omit to skip the line client)")
    ap.add_argument("--out", default="target/browser", help="where screenshots go")
    ap.add_argument("--timeout", type=float, default=15.0, help="bound of every wait, seconds")
    ap.add_argument("--restart-cmd", help="a shell command restarting the server (checks reconnect)")
    ap.add_argument("--kick", action="store_true",
                    help="check an operator kick (prints `kick: NICK`; the caller kicks NICK)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    r = Result()
    tag = str(os.getpid())
    alice_nick, bob_nick, carol_nick = f"alice{tag}", f"bob{tag}", f"carol{tag}"

    drivers = []
    try:
        da = browser(1100, 720)
        drivers.append(da)
        db = browser(1100, 720)
        drivers.append(db)
        a = Page(da, args.url, args.timeout)
        b = Page(db, args.url, args.timeout)
        r.check("browsers set their nicks", lambda: (a.set_nick(alice_nick), b.set_nick(bob_nick)))

        line = None
        if args.tcp:
            line = LineClient(args.tcp, args.timeout)
            line.wait_for(lambda l: l.startswith("* welcome"), args.timeout, "welcome")
            line.send(f"/nick {carol_nick}")
            line.wait_for(lambda l: l.endswith(f"is now {carol_nick}"), args.timeout, "nick change")

        def browser_to_all():
            a.type_line(f"hello from {alice_nick}")
            b.wait_log(lambda t: f"hello from {alice_nick}" in t and alice_nick in t, "alice's message")
            if line:
                line.wait_for(lambda l: l == f"<{alice_nick}> hello from {alice_nick}", args.timeout, "alice's line")

        r.check("a browser message reaches the other browser and nc", browser_to_all)

        if line:
            def line_to_browsers():
                line.send(f"hi from {carol_nick}")
                for p in (a, b):
                    p.wait_log(lambda t: f"hi from {carol_nick}" in t, "carol's message")

            r.check("an nc message reaches both browsers", line_to_browsers)

        def action_and_private():
            a.type_line("/me waves")
            b.wait_log(lambda t: alice_nick in t and "waves" in t, "alice's action")
            a.type_line(f"/msg {bob_nick} psst {tag}")
            b.wait_log(lambda t: f"psst {tag}" in t and alice_nick in t, "the private message")
            a.wait_log(lambda t: t.find("->") >= 0 and f"psst {tag}" in t, "the private echo")

        r.check("/me and /msg between browsers", action_and_private)

        def hostile_shows_as_text(sender, name):
            for label, payload in HOSTILE:
                marker = f"{name}-{label}-{tag}"
                text = f"{marker} {payload}"
                if sender is line:
                    line.send(text)
                else:
                    sender.type_line(text)
                for p in (a, b):
                    got = p.wait_log(lambda t: marker in t, f"{marker}")
                    if label in ("script", "img"):
                        assert payload in got, f"{label}: shown as {got!r}"
                    if label == "ansi":
                        assert "\x1b" not in got and "red" in got, f"ansi: {got!r}"
                    if label == "bidi":
                        assert "\u202e" not in got and "evil" in got, f"bidi: {got!r}"
            for p in (a, b):
                made = p.d.execute_script(
                    "return document.querySelectorAll('#log script, #log img, #log [onerror]').length;"
                )
                assert made == 0, f"{made} elements made from peer text"
                assert p.d.execute_script("return window.__pwned === undefined;"), "a script ran"

        if line:
            r.check("hostile text from nc shows as text", lambda: hostile_shows_as_text(line, "nc"))
        r.check("hostile text from a browser shows as text", lambda: hostile_shows_as_text(b, "web"))

        def screenshots():
            a.d.save_screenshot(os.path.join(args.out, "chat-desktop.png"))
            a.d.set_window_size(390, 844)
            time.sleep(0.3)  # one layout pass; the screenshot is for people, not asserted
            a.d.save_screenshot(os.path.join(args.out, "chat-phone.png"))
            overflow = a.d.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
            )
            assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
            a.d.set_window_size(1100, 720)

        r.check("screenshots, and no overflow at phone width", screenshots)

        def keyboard_only():
            # Tab from the message box reaches the send button; the focus order
            # includes the rooms and members buttons.
            box = a.d.find_element(By.ID, "input")
            box.click()
            box.send_keys(Keys.TAB)
            focused = a.d.switch_to.active_element.get_attribute("id")
            assert focused == "send", f"Tab from the input went to {focused!r}"

        r.check("keyboard: Tab order from the input", keyboard_only)

        r.check(
            "no console errors (CSP violations included)",
            lambda: [(_ for _ in ()).throw(AssertionError(str(e))) for e in a.console_errors() + b.console_errors()],
        )

        if args.kick:
            def kicked():
                here = a.room()
                a.wait(lambda d: (a.room_count(here) or 0) >= 2, "a room count")
                before = a.room_count(here)
                seen = len(a.log_texts())
                print(f"kick: {bob_nick}", flush=True)
                b.wait(lambda d: b.state() == "disconnected by the server", "the kick")
                b.wait_log(lambda t: "kicked" in t and "kick test" in t, "the kick notice")
                assert b.d.find_element(By.ID, "reconnect").is_displayed(), "no Reconnect button"
                a.wait_log(lambda t: bob_nick in t and "left" in t and "kicked" in t, "bob's leaving")
                # The count refreshes on a leave, not only on a join.
                a.wait(lambda d: a.room_count(here) == before - 1, f"the count of {here} to drop from {before}")
                # Several backoff periods later the kicked page is still out:
                # no silent reconnect loop (the other page would see it join).
                time.sleep(3)
                assert b.state() == "disconnected by the server", f"state {b.state()!r}"
                joined = [t for t in a.log_texts()[seen:] if " joined " in t or " is now " in t]
                assert not joined, f"the kicked page came back: {joined}"
                # Asked to, it comes back with its nick, and does not ask to
                # join the room the server already put it in (its own message,
                # sent after, comes back after any answer to that).
                seen_b = len(b.log_texts())
                b.d.find_element(By.ID, "reconnect").click()
                b.wait(lambda d: b.state() == "connected", "the reconnect")
                b.wait(lambda d: b.me() == bob_nick, "bob's nick back")
                b.type_line(f"back {tag}")
                b.wait_log(lambda t: f"back {tag}" in t, "bob's own message")
                errors = [t for t in b.log_texts()[seen_b:] if "already in" in t]
                assert not errors, f"the page asked for the room it was in: {errors}"

            r.check("an operator kick shows in the page, which stays out", kicked)

        if args.restart_cmd:
            def reconnects():
                # In a room of its own before the restart: the page must go back there.
                elsewhere = f"games{tag}"
                a.type_line(f"/join {elsewhere}")
                a.wait(lambda d: a.room() == elsewhere, f"a move to {elsewhere}")
                seen = len(a.log_texts())
                subprocess.run(args.restart_cmd, shell=True, check=True, timeout=args.timeout)
                a.wait(lambda d: a.state().startswith("disconnected") or a.state() == "reconnecting", "a disconnect")
                a.wait(lambda d: a.state() == "connected", "a reconnect", timeout=args.timeout + 35)
                a.wait(lambda d: a.me() == alice_nick, "the nick kept")
                a.wait(lambda d: a.room() == elsewhere, f"back in {elsewhere}")
                a.wait(lambda d: a.room_count(elsewhere) == 1, f"{elsewhere} in the rooms list")
                errors = [t for t in a.log_texts()[seen:] if "already in" in t]
                assert not errors, f"the page asked for a room it was in: {errors}"

            r.check("the page reconnects after a restart, keeps its nick and its room", reconnects)
    finally:
        for d in drivers:
            try:
                d.quit()
            except Exception:
                pass
    print(f"browser: {r.passed} passed, {r.failed} failed", flush=True)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
