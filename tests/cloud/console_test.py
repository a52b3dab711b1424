#!/usr/bin/env python3
"""The web console in a real browser (issue 21): headless Chromium driven by Selenium.

usage: console_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORKDIR

A control plane with --credentials and one host (harness.py), then in Chromium:
  - the API answers 401 without a session cookie; a wrong secret shows an error and no data;
  - sign in; the cookie is HttpOnly (not in document.cookie); the overview shows the host
    with its CPU, memory and disk bars;
  - launch an instance from the form; the instances table shows it pending, then running,
    without a reload (the event stream; a marker set on the page survives);
  - its page opens the serial terminal (xterm.js over the WebSocket): `uname -m` typed,
    `riscv64` on a row of its own; a second browser on the same terminal sees what the
    first types and the first what the second types;
  - hostile input: a huge name and huge user data are refused with a visible error and
    launch nothing; tags with markup and quotes are shown as text (window.__pwned stays
    undefined);
  - from Python over a raw socket (signed in through the API): no cookie → 401, a foreign
    Origin → 403, a relayed command works, then garbage, an unmasked frame, a frame
    claiming 1 TiB and a 64 KiB + 1 message each close the connection (1002/1009), and the
    cloud still answers; the browser's terminal still works;
  - stop, then terminate, from the UI; the states change on the page.
Screenshots of each page go to a directory under WORKDIR (kept, printed); with
NIMBUS_SAVE_SCREENSHOTS=DIR they are copied there too. Exit 77 (skipped) without chromium,
chromedriver or python3-selenium."""
import base64
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as ct  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
KEY, SECRET = "AKIDCONSOLETEST", "console-secret-1"
HOST = "con-h1"
HOSTILE = "\"'><img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>"


T0 = time.monotonic()


def log(message):
    """A log line with the seconds since the test started (the phases' timings)."""
    ct.log(f"+{time.monotonic() - T0:5.1f}s {message}")


# ---- the browser ----

def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def by_css(driver, css):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css)


def click(driver, css, what=None, timeout=10):
    """Clicks the element CSS finds, finding it again if the page redrew it meanwhile."""
    def attempt():
        by_css(driver, css).click()
        return True
    ct.wait_for(what or f"a click on {css}", attempt, timeout=timeout, interval=0.2)


def all_css(driver, css):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


def visible(driver, css):
    found = all_css(driver, css)
    return found[0] if found and found[0].is_displayed() else None


def error_text(driver):
    bar = visible(driver, "#error-bar")
    return by_css(driver, "#error-text").text if bar else None


def sign_in(driver, url, key, secret):
    driver.get(url)
    ct.wait_for("the sign-in form", lambda: visible(driver, "#signin-form"), timeout=15)
    key_box, secret_box = by_css(driver, "input[name=access_key]"), by_css(driver, "input[name=secret]")
    key_box.clear()
    key_box.send_keys(key)
    secret_box.clear()
    secret_box.send_keys(secret)
    by_css(driver, "#signin-form button[type=submit]").click()


def shoot(driver, shots, name):
    path = os.path.join(shots, f"{name}.png")
    driver.save_screenshot(path)
    log(f"screenshot {path}")


def confirm_dialog(driver):
    """Presses the dialog's confirming button (the last one)."""
    button = ct.wait_for("the confirmation dialog", lambda: visible(driver, "dialog.modal .modal-buttons button:last-child"),
                         timeout=10)
    button.click()


def row_state(driver, iid):
    rows = all_css(driver, f"tr[data-id='{iid}']")
    return rows[0].get_attribute("data-state") if rows else None


def terminal_rows(driver):
    """The terminal's rows as xterm.js draws them (its DOM renderer), spaces normalised."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('.terminal-host .xterm-rows > div'), d => d.textContent)")
    return [r.replace("\u00a0", " ").rstrip() for r in rows]


def terminal_text(driver):
    """All of the terminal's buffer (scrollback too), through the page's hook."""
    return driver.execute_script("const h = document.querySelector('.terminal-host');"
                                 "return h && h.nimbusTerminal ? h.nimbusTerminal.text() : ''")


def type_in_terminal(driver, text):
    from selenium.webdriver.common.action_chains import ActionChains
    by_css(driver, ".terminal-host .xterm").click()
    ActionChains(driver).send_keys(text).perform()


def wait_terminal_line(driver, line, what, timeout=60):
    """A row that is exactly LINE (the command's output, not its echo)."""
    return ct.wait_for(what, lambda: any(r.strip() == line for r in terminal_text(driver).split("\n")),
                       timeout=timeout, interval=0.3)


# ---- the API from Python ----

class Api:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.cookie = None

    def call(self, method, path, body=None, csrf=True, cookie=True):
        headers = {"Content-Type": "application/json"}
        if csrf:
            headers["X-Nimbus-Console"] = "1"
        if cookie and self.cookie:
            headers["Cookie"] = self.cookie
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null"), r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw), e.headers
            except ValueError:
                return e.code, raw, e.headers

    def sign_in(self, key, secret):
        status, body, headers = self.call("POST", "/console/api/session", {"access_key": key, "secret": secret})
        assert status == 200, (status, body)
        set_cookie = headers.get("Set-Cookie", "")
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie, set_cookie
        self.cookie = set_cookie.split(";")[0]
        return body


# ---- a raw WebSocket from Python ----

def ws_open(cloud, path, cookie, origin=None):
    """The upgrade request by hand; returns (socket, HTTP status, bytes read past the head)."""
    s = socket.create_connection((cloud.addr, cloud.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (f"GET {path} HTTP/1.1\r\nHost: {cloud.addr}:{cloud.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin or f'http://{cloud.addr}:{cloud.port}'}\r\n")
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    s.sendall((head + "\r\n").encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    status_line = got.split(b"\r\n", 1)[0].decode(errors="replace")
    status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
    return s, status, got.partition(b"\r\n\r\n")[2]


def ws_frame(opcode, payload, masked=True, fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class FrameReader:
    """Server frames (unmasked) from a socket: the data relayed and the close code."""

    def __init__(self, s, already=b""):
        self.s, self.buf, self.data, self.close_code, self.eof = s, already, b"", None, False

    def pump(self, timeout):
        self.s.settimeout(timeout)
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            chunk = None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if chunk == b"":
            self.eof = True
        elif chunk:
            self.buf += chunk
        self.parse()

    def parse(self):
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, pos = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, pos = struct.unpack(">Q", self.buf[2:10])[0], 10
            assert not b1 & 0x80, "a server frame must not be masked"
            if len(self.buf) < pos + n:
                return
            payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
            opcode = b0 & 0x0F
            if opcode in (0x0, 0x1, 0x2):
                self.data += payload
            elif opcode == 0x8:
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005

    def wait_for_data(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while needle not in self.data and not self.eof and time.monotonic() < deadline:
            self.pump(0.5)
        assert needle in self.data, (needle, self.data[-400:], self.eof)

    def wait_closed(self, timeout=15):
        """Until the server closes the connection; returns its close code (None if none came)."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pump(0.5)
        assert self.eof, "the server kept the connection open"
        return self.close_code


def ws_abuse(cloud, api, iid):
    """Hostile WebSocket peers on the terminal route; each must be closed, nothing else harmed."""
    path = f"/console/api/instances/{iid}/terminal"
    s, status, _ = ws_open(cloud, path, None)
    s.close()
    assert status == 401, f"terminal without a cookie: {status}"
    s, status, _ = ws_open(cloud, path, api.cookie, origin="http://evil.example")
    s.close()
    assert status == 403, f"terminal from a foreign Origin: {status}"

    # A well-behaved raw client first: what it types is relayed, the output comes back.
    s, status, rest = ws_open(cloud, path, api.cookie)
    assert status == 101, status
    reader = FrameReader(s, rest)
    s.sendall(ws_frame(0x2, b"echo raw$((3*3))done\r"))
    reader.wait_for_data(b"raw9done")
    s.sendall(ws_frame(0x8, struct.pack(">H", 1000)))
    reader.wait_closed()
    s.close()
    log("raw WebSocket: 401 without a cookie, 403 from a foreign Origin, a command relayed")

    cases = [
        ("garbage", os.urandom(16) + b"\xff" * 64, (1002,)),
        ("an unmasked client frame", ws_frame(0x2, b"hello", masked=False), (1002,)),
        ("reserved bits set", bytes([0xF2, 0x80]) + os.urandom(4), (1002,)),
        ("an unknown opcode", bytes([0x83, 0x80]) + os.urandom(4), (1002,)),
        ("a frame claiming 1 TiB", bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 40) + os.urandom(4), (1009,)),
        ("a 64 KiB + 1 message", ws_frame(0x2, b"x" * (64 * 1024 + 1)), (1009,)),
    ]
    for what, payload, codes in cases:
        s, status, rest = ws_open(cloud, path, api.cookie)
        assert status == 101, (what, status)
        reader = FrameReader(s, rest)
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we wrote: what we want
        code = reader.wait_closed()
        s.close()
        assert code in codes, f"{what}: closed with {code}, expected one of {codes}"
        status, body, _ = api.call("GET", "/console/api/session")
        assert status == 200, (what, status, body)
        log(f"raw WebSocket: {what} → closed ({code}); the cloud still answers")


# ---- the test ----

def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    cloud_bin, nimbus, nimbusd, work = sys.argv[1:]
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("console: skipped (python3-selenium is not installed: scripts/install-deps.sh)")
        sys.exit(77)
    if not os.access(CHROMIUM, os.X_OK) or not os.access(CHROMEDRIVER, os.X_OK):
        print(f"console: skipped ({CHROMIUM} or {CHROMEDRIVER} missing: scripts/install-deps.sh)")
        sys.exit(77)
    ct.PREFIXES.setdefault("console", "127.135")
    ct.configure(cloud_bin, nimbus, nimbusd, "console")
    os.makedirs(work, exist_ok=True)
    shots = tempfile.mkdtemp(prefix="console-screenshots-", dir=work)
    os.chmod(shots, 0o755)
    cloud = driver = driver2 = None
    ok = False
    try:
        cloud = ct.Cloud(zones="a", credentials=(KEY, SECRET))
        cloud.add_host(HOST, "a", memory="2G")
        url = cloud.endpoint + "/console/"
        api = Api(cloud.endpoint)

        # No cookie: no data.
        for path in ("/console/api/instances", "/console/api/overview", "/console/api/choices"):
            status, body, _ = api.call("GET", path, cookie=False)
            assert status == 401 and body["error"]["code"] == "Unauthorized", (path, status, body)
        status, body, _ = api.call("POST", "/console/api/session", {"access_key": KEY, "secret": "wrong"})
        assert status == 401, (status, body)
        api.sign_in(KEY, SECRET)
        status, body, _ = api.call("POST", "/console/api/instances/i-00000000/stop", csrf=False)
        assert status == 403, f"a POST without X-Nimbus-Console: {status} {body}"
        log("API: 401 without a session, 401 for a wrong secret, 403 without the CSRF header")

        # The browser: a wrong secret first.
        driver = browser()
        driver.get(url)
        ct.wait_for("the sign-in form", lambda: visible(driver, "#signin-form"), timeout=15)
        shoot(driver, shots, "1-sign-in")
        sign_in(driver, url, KEY, "not-the-secret")
        ct.wait_for("the sign-in error", lambda: error_text(driver), timeout=10)
        assert "Unauthorized" in error_text(driver) or "secret" in error_text(driver).lower(), error_text(driver)
        assert visible(driver, "#signin-form") and not visible(driver, "#topbar") and not visible(driver, "#main")
        assert HOST not in driver.find_element("tag name", "body").text
        assert driver.execute_script("return document.getElementById('main').childElementCount") == 0
        shoot(driver, shots, "1-sign-in-refused")
        log(f"browser: a wrong secret shows \"{error_text(driver)}\" and no data")

        sign_in(driver, url, KEY, SECRET)
        ct.wait_for("the overview", lambda: visible(driver, f"section.host-card[data-host='{HOST}']"), timeout=15)
        assert not error_text(driver), error_text(driver)
        assert driver.execute_script("return document.cookie") == "", "the session cookie must be HttpOnly"
        status, overview, _ = api.call("GET", "/console/api/overview")
        host = [h for h in overview["hosts"] if h["id"] == HOST][0]
        vcpus = host["cpus"]["capacity"]  # the host's CPUs times its overcommit, as nimbusd reports
        assert vcpus >= 1, host

        def host_card():
            card = by_css(driver, f"section.host-card[data-host='{HOST}']")
            text = card.text
            bars = len(card.find_elements("css selector", ".resource .bar"))
            return text if bars == 3 and f"{vcpus} vCPU" in text and "up" in text else None
        ct.wait_for(f"the host card: three bars, {vcpus} vCPU, up", host_card, timeout=10)
        assert by_css(driver, "#region").text == ct.REGION, by_css(driver, "#region").text
        region_card = by_css(driver, f"section[data-region='{ct.REGION}']")
        assert "this region" in region_card.text, region_card.text
        driver.execute_script("window.__marker = 'no-reload'")
        shoot(driver, shots, "2-overview")
        log("browser: signed in; the overview shows the host with its three bars")

        # Hostile launches: refused with a visible error, nothing launched.
        click(driver, "a[href='#/launch']")
        ct.wait_for("the launch form", lambda: visible(driver, "form.launch-form button[type=submit]"), timeout=15)
        for field, value in (("name", "N" * 20000 + HOSTILE), ("user_data", HOSTILE * 2000)):
            box = by_css(driver, f"form.launch-form [name={field}]")
            driver.execute_script("arguments[0].value = arguments[1]", box, value)
            by_css(driver, "form.launch-form button[type=submit]").click()
            ct.wait_for(f"the error for a huge {field}", lambda: error_text(driver), timeout=15)
            log(f"browser: a huge {field} refused: {error_text(driver)[:120]}")
            driver.execute_script("arguments[0].value = ''", box)
            by_css(driver, "#error-dismiss").click()
        status, body, _ = api.call("GET", "/console/api/instances")
        assert body["instances"] == [], body

        # A real launch from the form.
        by_css(driver, "form.launch-form [name=name]").send_keys("console-web-1")
        driver.execute_script("window.__states = []; store.subscribe(() => { for (const i of store.instances)"
                              " if (window.__states[window.__states.length - 1] !== i.state) window.__states.push(i.state); })")
        shoot(driver, shots, "4-launch")
        by_css(driver, "form.launch-form button[type=submit]").click()
        ct.wait_for("the instances page", lambda: driver.execute_script("return location.hash") == "#/instances", timeout=15)
        iid = ct.wait_for("the new row", lambda: driver.execute_script(
            "const r = document.querySelector('tr[data-id]'); return r && r.dataset.id"), timeout=15)
        ct.wait_for(f"{iid} running in the table", lambda: row_state(driver, iid) == "running", timeout=120)
        states = driver.execute_script("return window.__states")
        assert "pending" in states and states[-1] == "running", states
        assert driver.execute_script("return window.__marker") == "no-reload", "the page reloaded"
        ct.wait_for("the row's name and host", lambda: all(
            w in by_css(driver, f"tr[data-id='{iid}']").text for w in ("console-web-1", HOST)), timeout=10)
        log(f"browser: {iid} launched from the form; states seen without a reload: {states}")
        shoot(driver, shots, "3-instances")

        # Its terminal.
        click(driver, f"tr[data-id='{iid}'] a[href='#/instances/{iid}']")
        ct.wait_for("the terminal connected", lambda: by_css(driver, ".term-status").text == "connected", timeout=30)
        before = [r for r in terminal_text(driver).split("\n") if r.strip() == "riscv64"]
        deadline = time.monotonic() + 120
        while True:  # the guest's shell may still be starting: type again until it answers
            type_in_terminal(driver, "uname -m\n")
            try:
                ct.wait_for("riscv64 in the terminal", lambda: len([r for r in terminal_text(driver).split("\n")
                                                                    if r.strip() == "riscv64"]) > len(before), timeout=8)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        ct.wait_for("riscv64 drawn on a row", lambda: any(r.strip() == "riscv64" for r in terminal_rows(driver)),
                    timeout=10)
        log("browser: `uname -m` typed in the terminal, riscv64 on a row of xterm.js's")

        # A second viewer.
        driver2 = browser()
        sign_in(driver2, url, KEY, SECRET)
        ct.wait_for("the second overview", lambda: visible(driver2, "section.host-card"), timeout=15)
        driver2.get(f"{url}#/instances/{iid}")
        ct.wait_for("the second terminal", lambda: by_css(driver2, ".term-status").text == "connected", timeout=30)
        type_in_terminal(driver2, "echo second$((40+2))viewer\n")
        wait_terminal_line(driver2, "second42viewer", "the second viewer's own output")
        wait_terminal_line(driver, "second42viewer", "the first viewer seeing the second's output")
        type_in_terminal(driver, "echo first$((50+1))viewer\n")
        wait_terminal_line(driver2, "first51viewer", "the second viewer seeing the first's output")
        log("browser: two viewers on one terminal each see what the other types")

        # Detach and reconnect: the instance runs on, the history is replayed.
        click(driver2, "button[data-term=detach]")
        ct.wait_for("detached", lambda: by_css(driver2, ".term-status").text == "detached", timeout=10)
        click(driver2, "button[data-term=connect]")
        ct.wait_for("reconnected", lambda: by_css(driver2, ".term-status").text == "connected", timeout=30)
        type_in_terminal(driver2, "echo again$((2+2))\n")
        wait_terminal_line(driver2, "again4", "output after reconnecting")
        driver2.get(f"{url}#/overview")
        ct.wait_for("the instance on the overview", lambda: all_css(
            driver2, f"section.host-card[data-host='{HOST}'] a[href='#/instances/{iid}'] ~ .badge-running"), timeout=15)
        shoot(driver2, shots, "2-overview-running")
        driver2.quit()
        driver2 = None

        # Hostile tags: shown as text, no script runs.
        click(driver, "button[data-action=tags]")
        ct.wait_for("the tags dialog", lambda: visible(driver, "dialog.modal"), timeout=10)
        add = [b for b in all_css(driver, "dialog.modal button.small") if b.text == "Add tag"][0]
        add.click()
        keys, values = all_css(driver, "dialog.modal .tag-key"), all_css(driver, "dialog.modal .tag-value")
        keys[-1].send_keys("x\"'><b>k")
        values[-1].send_keys(HOSTILE)
        confirm_dialog(driver)
        ct.wait_for("the hostile tag shown as text", lambda: HOSTILE in by_css(driver, ".tag-chips").text, timeout=20)
        assert driver.execute_script("return window.__pwned") is None, "a script from the data ran"
        assert not all_css(driver, ".tag-chips img, .tag-chips script, .tag-chips b"), "markup from the data"
        shoot(driver, shots, "5-instance-terminal")
        log("browser: markup and quotes in tags shown as text; window.__pwned undefined")

        # Raw WebSocket peers, then the browser's terminal still works.
        ws_abuse(cloud, api, iid)
        status, body, _ = api.call("GET", "/console/api/instances")
        assert status == 200 and any(i["id"] == iid and i["state"] == "running" for i in body["instances"]), body
        assert by_css(driver, ".term-status").text == "connected"
        type_in_terminal(driver, "echo still$((7*6))\n")
        wait_terminal_line(driver, "still42", "the browser's terminal after the abuse")
        ct.wait_for("a CPU plot", lambda: all_css(driver, ".chart-cpu path.line"), timeout=20)
        driver.execute_script("document.querySelector('.charts').scrollIntoView()")
        shoot(driver, shots, "6-instance-metrics")
        driver.execute_script("window.scrollTo(0, 0)")

        # Stop, then terminate, from the UI.
        click(driver, ".page-actions button[data-action=stop]")
        confirm_dialog(driver)
        ct.wait_for("stopped on the page", lambda: by_css(driver, ".title-row .badge").text == "stopped", timeout=120)
        # The terminal of a stopped instance is refused before the upgrade (409): the page says so.
        click(driver, "button[data-term=connect]")
        ct.wait_for("the refused terminal explained", lambda: by_css(driver, ".term-status").text.startswith(
            "could not open the console"), timeout=15)
        click(driver, ".page-actions button[data-action=terminate]")
        confirm_dialog(driver)
        ct.wait_for("terminated on the page", lambda: by_css(driver, ".title-row .badge").text == "terminated",
                    timeout=120)
        click(driver, "nav a[href='#/instances']")
        ct.wait_for("terminated in the table", lambda: row_state(driver, iid) == "terminated", timeout=30)
        assert driver.execute_script("return window.__marker") == "no-reload"
        assert driver.execute_script("return window.__pwned") is None
        assert not error_text(driver), error_text(driver)
        log(f"browser: {iid} stopped, then terminated from the UI")

        # Sign out: no more data.
        click(driver, "#signout")
        ct.wait_for("the sign-in form again", lambda: visible(driver, "#signin-form"), timeout=10)
        ok = True
    except BaseException:
        if driver:
            try:
                shoot(driver, shots, "failure")
                for entry in driver.get_log("browser"):
                    print("browser:", entry, flush=True)
            except Exception as e:  # noqa: BLE001 - the report goes on
                print(f"(no browser state: {e!r})")
        if cloud:
            cloud.dump_logs()
        raise
    finally:
        for d in (driver, driver2):
            if d:
                try:
                    d.quit()
                except Exception:  # noqa: BLE001
                    pass
        if cloud:
            cloud.close()
            if ok:  # the instance disks (~230 MB)
                shutil.rmtree(cloud.dir, ignore_errors=True)
    save = os.environ.get("NIMBUS_SAVE_SCREENSHOTS")
    if save:
        os.makedirs(save, exist_ok=True)
        for name in sorted(os.listdir(shots)):
            if name.endswith(".png") and name != "failure.png":
                shutil.copy(os.path.join(shots, name), os.path.join(save, name))
        log(f"screenshots copied to {save}")
    log(f"screenshots in {shots}")
    log(f"console: PASS in {time.monotonic() - T0:.1f} s")


if __name__ == "__main__":
    main()
