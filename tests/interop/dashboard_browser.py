"""The dashboard in headless Chromium (selenium), driven by
tests/it/dashboard.rs: the page renders the sessions, the chart and the
payments table with the numbers the test expects; a screenshot is saved;
a payment made while the page is open appears without a reload; and the
page's Pause button stops the next payment of a running agent.

Prints one JSON object; {"ok": true, ...} when every check passed.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def browser():
    """Headless Debian Chromium through its chromedriver."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,2200", "--hide-scrollbars"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def cells(driver, row):
    return [td.text for td in row.find_elements(By.TAG_NAME, "td")]


def session_row(driver, name):
    for row in driver.find_elements(By.CSS_SELECTOR, "#sessions-body tr"):
        if row.get_attribute("data-session") == name:
            return cells(driver, row)
    return None


def wait(driver, cond, what, timeout=15):
    def attempt(_):
        # The script replaces elements as it re-renders: one found a moment
        # ago may be gone (stale); look again at the next poll.
        try:
            return cond()
        except Exception:
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(attempt)
    except Exception:
        raise Failed(f"{what}; the page says: {driver.find_element(By.TAG_NAME, 'main').text[:1500]}")


def now(driver, read, what):
    """`read()` of elements that a re-render may replace between finding
    and using them: retried on a stale element, as `wait` does. A click
    that finds its element stale was never delivered, so a retry does not
    click twice."""
    return wait(driver, lambda: (read(),), what)[0]


def run(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    try:
        answer = json.loads(out.stdout) if out.stdout.strip() else {}
    except ValueError:
        answer = {"raw": out.stdout}
    return out.returncode, answer, out.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--live-fetch", required=True)
    ap.add_argument("--paused-fetch")
    ap.add_argument("--screenshot", required=True)
    args = ap.parse_args()
    expect = json.loads(args.expect)
    seen = {}
    for stale in ("-failed.png", "-paused.png"):
        if os.path.exists(args.screenshot.replace(".png", stale)):
            os.remove(args.screenshot.replace(".png", stale))
    driver = browser()
    try:
        driver.get(args.url)
        # 1. What the server rendered (and the script re-rendered once live).
        wait(driver, lambda: driver.find_element(By.ID, "live").get_attribute("data-state") == "on",
             "the event stream did not connect")
        for name, want in expect["sessions"].items():
            row = session_row(driver, name)
            check(row is not None, f"no row for session {name}")
            # Session, Pool, Budget, Spent, Reserved, Left, Used, Payments, Last seen
            got = {"spent": row[3], "left": row[5], "payments": row[7]}
            check(got == want, f"session {name}: {got}, want {want}")
        total = driver.find_element(By.ID, "total-spent").text
        check(total == expect["total_spent"], f"total spent {total}")
        limit = driver.find_element(By.ID, "limit-max-cost").text
        check(limit == expect["max_cost"], f"per-request cap {limit}")
        rows = driver.find_elements(By.CSS_SELECTOR, "#payments-body tr")
        check(len(rows) == expect["payments"], f"{len(rows)} payment rows")
        first = cells(driver, rows[0])
        check(first[6] == "succeeded", f"newest payment {first}")
        bars = driver.find_elements(By.CSS_SELECTOR, "#chart-hour svg rect.bar")
        check(len(bars) >= 1, "no bar in the hourly chart")
        check(driver.find_elements(By.CSS_SELECTOR, "#chart-day svg .legend"), "no legend in the daily chart")
        seen["bars"] = len(bars)
        driver.save_screenshot(args.screenshot)

        # 2. A payment while the page is open: shown without a reload.
        driver.execute_script("window.__noReload = 1;")
        code, answer, err = run(json.loads(args.live_fetch))
        check(code == 0 and answer.get("status") == 200, f"live fetch: {code} {answer} {err}")
        wait(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, "#payments-body tr")) == expect["payments"] + 1,
             "the live payment did not appear")
        row = wait(driver, lambda: session_row(driver, expect["live_session"]), "the live session did not appear")
        check(row[3] == expect["live_spent"], f"live session row {row}")
        check(driver.execute_script("return window.__noReload") == 1, "the page reloaded")
        seen["live_row"] = row

        # 3. The Pause button stops the next payment of a running agent.
        if args.paused_fetch:
            now(driver, lambda: driver.find_element(By.ID, "pause-reason-input").send_keys("runaway <agent> test"),
                "could not type the reason")
            now(driver, lambda: driver.find_element(By.ID, "pause-button").click(), "could not click Pause")
            wait(driver, lambda: driver.find_element(By.ID, "pause-state").text.startswith("Paused"),
                 "the banner did not say paused")
            by = now(driver, lambda: driver.find_element(By.ID, "pause-by").text, "no pause-by")
            reason = now(driver, lambda: driver.find_element(By.ID, "pause-reason").text, "no pause reason")
            check(by.startswith("dashboard (from 127.0.0.1)"), f"paused by {by!r}")
            check(reason == "runaway <agent> test", f"reason {reason!r}")
            banner = now(driver, lambda: driver.find_element(By.ID, "pause").get_attribute("class"), "no banner")
            check("paused" in banner, "no red banner")
            check(driver.execute_script("return window.__noReload") == 1, "the page reloaded on pause")
            code, answer, err = run(json.loads(args.paused_fetch))
            kind = answer.get("error", {}).get("kind")
            check(code == 2 and kind == "paused", f"a fetch while paused: exit {code}, {answer}, {err}")
            seen["paused_fetch"] = answer["error"]
            wait(driver, lambda: "runaway" in driver.find_element(By.ID, "history-body").text,
                 "the pause is not in the history")
            driver.save_screenshot(args.screenshot.replace(".png", "-paused.png"))
            now(driver, lambda: driver.find_element(By.ID, "resume").click(), "could not click Resume")
            wait(driver, lambda: driver.find_element(By.ID, "pause-state").text.startswith("Payments allowed"),
                 "resume did not lift the pause")
            check(driver.execute_script("return window.__noReload") == 1, "the page reloaded on resume")
        seen["ok"] = True
    except Failed as e:
        try:
            driver.save_screenshot(args.screenshot.replace(".png", "-failed.png"))
        except Exception:
            pass
        print(json.dumps({"ok": False, "failed": str(e), "seen": seen}, indent=1), file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()
    print(json.dumps(seen, indent=1))


if __name__ == "__main__":
    main()
