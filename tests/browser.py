"""Headless Chromium for the tests that look at the MLflow UI as a user does: Debian's chromium driven over the
DevTools protocol on a pipe (no port, no extra package), every host but 127.0.0.1 unresolvable, so nothing loads
from the internet."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading

import pytest
from conftest import WAIT, stop_group, wait_for

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; scripts/setup.sh --dev does)"
)
TEXT = "document.body ? document.body.innerText : ''"


class Chromium:
    """A headless Chromium of its own (a fresh profile: no choice a user made in the UI is remembered)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        to_browser, from_us = os.pipe()
        to_us, from_browser = os.pipe()
        args = [
            *("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
            *("--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={self.profile}"),
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--remote-debugging-pipe",  # it reads commands on fd 3 and writes on fd 4
        ]
        cmd = ["bash", "-c", f'exec "$@" 3<&{to_browser} 4>&{from_browser}', "chromium", CHROMIUM, *args]
        self.proc = subprocess.Popen(
            cmd,
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser)
        os.close(from_browser)
        self.out, self.events, self.replies, self.next_id = os.fdopen(from_us, "wb", 0), [], {}, 0
        threading.Thread(target=self._read, args=(os.fdopen(to_us, "rb", 0),), daemon=True).start()

    def _read(self, pipe) -> None:
        buf = b""
        while chunk := pipe.read(1 << 16):
            *messages, buf = (buf + chunk).split(b"\0")
            for m in map(json.loads, messages):
                if "id" in m:
                    self.replies.setdefault(m["id"], queue.Queue()).put(m)
                else:
                    self.events.append(m)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        self.out.write(json.dumps(msg).encode() + b"\0")
        reply = self.replies.setdefault(self.next_id, queue.Queue()).get(timeout=WAIT)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def open(self, url: str) -> str:
        """`url` in a window of its own; its frames' sessions (an out-of-process iframe gets its own) join as they
        appear. Each page is visible, as the one a user looks at: Chromium runs a hidden tab's timers at most once a
        second and its renderer at a lower priority (nice 5), which on a busy machine starves it."""
        tab = self.send("Target.createTarget", url="about:blank", newWindow=True)["targetId"]
        session = self.send("Target.attachToTarget", targetId=tab, flatten=True)["sessionId"]
        self.send("Target.setAutoAttach", session, autoAttach=True, waitForDebuggerOnStart=False, flatten=True)
        self.send("Runtime.enable", session)
        self.send("Page.navigate", session, url=url)
        return session

    def evaluate(self, session: str, expression: str) -> object:
        return self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)["result"].get("value")

    def states(self, tab: str, state: str) -> list[dict]:
        """The JSON the expression `state` makes, in the tab and in each of its frames (the iframe's own session,
        or its context in the tab)."""
        mine = [e for e in list(self.events) if e.get("sessionId") == tab]
        frames = [(e["params"]["sessionId"], {}) for e in mine if e["method"] == "Target.attachedToTarget"]
        contexts = [
            (tab, {"contextId": e["params"]["context"]["id"]})
            for e in mine
            if e["method"] == "Runtime.executionContextCreated"
        ]
        found = []
        for session, where in [(tab, {}), *frames, *contexts]:
            try:
                value = self.send("Runtime.evaluate", session, expression=state, returnByValue=True, **where)
                found.append(json.loads(value["result"]["value"]))
            except (RuntimeError, KeyError):  # a frame gone with its navigation
                continue
        return found

    def frame_until(self, tab: str, state: str, which, done, timeout: float = WAIT) -> dict:
        """The state of the frame `which` picks, once done(state) holds (or as it is at the timeout)."""
        found: dict = {}

        def holds() -> bool:
            nonlocal found
            found = next((s for s in self.states(tab, state) if which(s)), found)
            return bool(found) and done(found)

        wait_for(holds, timeout)
        return found

    def text_until(self, tab: str, done, timeout: float = WAIT) -> str:
        """The page's visible text once done(text) holds (or as it is at the timeout)."""
        text = ""

        def holds() -> bool:
            nonlocal text
            text = self.evaluate(tab, TEXT) or ""
            return done(text)

        wait_for(holds, timeout)
        return text

    def click(self, tab: str, starts: str) -> bool:
        """Click what a user clicks to see the element whose own text starts with `starts`; False if none."""
        script = f"""(() => {{
          const hit = Array.from(document.querySelectorAll("span, a, button"))
            .find(e => e.innerText && e.innerText.startsWith({json.dumps(starts)}));
          if (!hit) return false;
          (hit.closest("a, button, [role=button]") || hit).click();
          return true;
        }})()"""
        return bool(self.evaluate(tab, script))

    def close(self) -> None:
        stop_group(self.proc, grace=5)
        shutil.rmtree(self.profile, ignore_errors=True)
