"""Headless Chromium driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``).

No browser-automation package is needed: Chromium reads protocol messages (JSON, NUL-terminated) from
file descriptor 3 and writes its answers and events to descriptor 4. That is enough to open a page,
wait until text appears, click an element, read the page's text and take screenshots.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; ``with Browser() as b: b.goto(url); b.wait_text("x")``."""

    def __init__(self, executable: str | None = None, width: int = 1440, height: int = 1000):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise FileNotFoundError("chromium is not installed")
        self.width, self.height = width, height
        self._ids = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._profile = tempfile.mkdtemp(prefix="iwh-chromium-")
        self.session: str | None = None
        #: protocol events (``{"method", "params"}``) in arrival order, e.g. after ``Network.enable``
        self.events: list[dict[str, Any]] = []
        self.proc: subprocess.Popen | None = None

    # --- process and pipe ------------------------------------------------------------------------
    def start(self) -> Browser:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # in the child, before exec: the protocol's fixed descriptors 3 and 4
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        cmd = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}",
               f"--window-size={self.width},{self.height}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=wire)
        os.close(to_child_r)
        os.close(from_child_w)
        threading.Thread(target=self._read, name="cdp-reader", daemon=True).start()
        pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._answers[-1] = {"error": {"message": "chromium closed the pipe"}}
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._answers[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while msg_id not in self._answers:
                if -1 in self._answers:
                    raise CdpError(self._answers[-1]["error"]["message"])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CdpError(f"{method}: no answer in {timeout}s")
                self._cond.wait(left)
            answer = self._answers.pop(msg_id)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=5)
            except CdpError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for fd in (getattr(self, "_to_child", None), getattr(self, "_from_child", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- page helpers ----------------------------------------------------------------------------
    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page; its JSON value (promises awaited)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise CdpError(f"JS error: {res['exceptionDetails'].get('text')} in {expression[:200]}")
        return res["result"].get("value")

    def text(self, selector: str = "body") -> str:
        return self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    def wait_for(self, expression: str, timeout: float = 60, what: str | None = None) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except CdpError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or expression}")
            time.sleep(0.25)

    def wait_text(self, *needles: str, selector: str = "body", timeout: float = 60) -> str:
        """Wait until every needle is in the text of ``selector``; that text."""
        cond = " && ".join(f"t.includes({json.dumps(n)})" for n in needles)
        expr = (f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                f"const t = e ? e.innerText : ''; return ({cond}) ? t : null; }})()")
        return self.wait_for(expr, timeout, what=f"{needles} in {selector}")

    def click(self, expression: str) -> None:
        """Click the element ``expression`` evaluates to (a JS expression returning an element)."""
        ok = self.js(f"(() => {{ const el = {expression}; if (!el) return false; "
                     "el.scrollIntoView({block: 'center'}); el.click(); return true; })()")
        if not ok:
            raise CdpError(f"nothing to click: {expression}")

    def mouse_click(self, expression: str) -> None:
        """A real mouse click (pointer events) at the centre of the element ``expression`` evaluates to:
        for widgets that ignore a scripted ``element.click()`` (Chakra's accordion triggers)."""
        box = self.js(f"(() => {{ const el = {expression}; if (!el) return null; "
                      "el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect(); "
                      "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        if not box:
            raise CdpError(f"nothing to click: {expression}")
        x, y = box
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path | str) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def dump_dom(self) -> str:
        return self.js("document.documentElement.outerHTML")
