"""A local HTTP server that speaks the chat-completions protocol and replays a script
(for tests and `bench llm`: no network, no model)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedChat:
    """Answers POST /v1/chat/completions from ``script`` (a list of steps, used
    in order, the last one repeated) or ``responder(body) -> step``.

    A step is {"content": text} | {"status": n, "headers": {...}} | {"sleep": s, ...}
    | {"raw": any JSON}. Every request body is recorded."""

    def __init__(self, script=None, responder=None, delay: float = 0.0):
        self.script = list(script or [])
        self.responder = responder
        self.delay = delay
        self.requests: list[dict] = []
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                step = server._next(body, dict(self.headers))
                try:
                    if step.get("sleep"):
                        time.sleep(step["sleep"])
                    if server.delay:
                        time.sleep(server.delay)
                    status = step.get("status", 200)
                    if "raw" in step:
                        payload = step["raw"]
                    elif status == 200:
                        payload = {
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": step.get("content", "[]")}}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                        }
                    else:
                        payload = {"error": {"message": "scripted failure"}}
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    for key, value in (step.get("headers") or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _next(self, body: dict, headers: dict) -> dict:
        with self._lock:
            self.requests.append({"body": body, "headers": headers})
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.responder is not None:
                return self.responder(body)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def user_texts(self) -> list[str]:
        return ["\n".join(m["content"] for m in r["body"]["messages"] if m["role"] == "user") for r in self.requests]
