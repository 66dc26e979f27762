#!/usr/bin/env python3
"""Chat history in a real Chromium (Debian's chromium + chromedriver, via selenium).

Checks, against a running `sockit chat serve --web ... --history-db ...`:
- lines said before a reload show again after it, marked as history
  (class ev-history, with their time), and only once;
- with --restart-cmd: after a server restart on the same database, the page
  reconnects and shows what was said while it was away exactly once, and
  nothing it had already shown again.

The last line is `browser: N passed, N failed`; the exit code is 1 if anything failed.

    python3 tests/browser/chat_history_browser.py --url http://127.0.0.1:8080/ --tcp 127.0.0.1:7000
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_browser import LineClient, Page, Result, browser  # noqa: E402

from selenium.webdriver.common.by import By  # noqa: E402


def history_items(page):
    return page.d.execute_script(
        "return Array.from(document.querySelectorAll('#log li.ev-history'))"
        ".map(li => [li.textContent, li.querySelector('time') ? li.querySelector('time').dateTime : '']);"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--tcp", required=True, help="the line protocol address HOST:PORT")
    ap.add_argument("--out", default="target/browser")
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--restart-cmd", help="a shell command restarting the server on the same database")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    r = Result()
    tag = str(os.getpid())
    d = browser(1100, 720)
    try:
        page = Page(d, args.url, args.timeout)
        nc = LineClient(args.tcp, args.timeout)
        nc.wait_for(lambda l: l.startswith("* welcome"), args.timeout, "welcome")
        nc.send(f"/nick nc{tag}")
        nc.wait_for(lambda l: f"is now nc{tag}" in l, args.timeout, "nick")
        said = [f"said before reload {i} {tag}" for i in range(3)]
        for s in said:
            nc.send(s)

        def live():
            page.wait_log(lambda t: said[-1] in t, "the live line")
            items = [t for t, _ in history_items(page)]
            assert not any(said[-1] in t for t in items), f"a live line marked as history: {items}"

        r.check("lines arrive live, unmarked", live)

        def after_reload():
            d.refresh()
            page.wait(lambda _: page.state() == "connected", "connected after reload")
            page.wait(lambda _: any(said[-1] in t for t, _ in history_items(page)), "history after reload")
            items = history_items(page)
            for s in said:
                hits = [(t, ts) for t, ts in items if s in t]
                assert len(hits) == 1, f"{s!r} shown {len(hits)} times: {items}"
                assert hits[0][1].endswith("Z") and "T" in hits[0][1], f"no time on {hits[0]}"
            d.save_screenshot(os.path.join(args.out, "chat-history.png"))

        r.check("after a reload the room's lines show again, marked as history, once", after_reload)

        def no_errors():
            errors = page.console_errors()
            assert not errors, errors

        r.check("no console errors", no_errors)

        if args.restart_cmd:
            def resumes():
                subprocess.run(args.restart_cmd, shell=True, check=True, timeout=args.timeout)
                page.wait(lambda _: page.state() != "connected", "a disconnect")
                nc2 = None
                deadline = time.monotonic() + args.timeout
                while nc2 is None:
                    try:
                        nc2 = LineClient(args.tcp, args.timeout)
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                nc2.wait_for(lambda l: l.startswith("* welcome"), args.timeout, "welcome")
                away = f"said while the page was away {tag}"
                nc2.send(away)
                page.wait(lambda _: page.state() == "connected", "a reconnect", timeout=args.timeout + 35)
                page.wait_log(lambda t: away in t, "the line said while away")
                texts = page.log_texts()
                assert sum(away in t for t in texts) == 1, f"shown more than once: {texts[-12:]}"
                for s in said:
                    n = sum(s in t for t in texts)
                    assert n == 1, f"{s!r} shown {n} times after the restart: {texts[-12:]}"
                assert page.d.find_elements(By.CSS_SELECTOR, "#log li.ev-history"), "no history marks"

            r.check("after a restart the page shows what it missed, once", resumes)
    finally:
        d.quit()
    print(f"browser: {r.passed} passed, {r.failed} failed", flush=True)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
