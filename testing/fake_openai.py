"""A fake OpenAI-compatible Chat Completions server, for the openai agent's tests.

A real HTTP server on loopback (a thread of the test process, reachable from the
servers a test starts too) that answers POST /v1/chat/completions from a script
and records every request. Each script entry is `text_reply(...)`,
`tool_reply(...)`, `(status, payload)` for an error, or `Silence()` (nothing
until the test ends); with the script empty it answers `default`. A request with
`"stream": true` is answered as the SDK expects (server-sent `chat.completion.chunk`s,
text word by word, tool calls in pieces, then `[DONE]`), one chunk every
`token_delay` seconds: a slow model on demand. `disconnects` counts the streams
whose client went away before the end.
"""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tool_reply(*calls, text=None):
    """A completion asking for `calls`: (id, name, arguments dict or raw text)."""
    return {
        "content": text,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for call_id, name, args in calls
        ],
    }


def text_reply(text):
    return {"content": text}


class Silence:
    """Answer nothing until the test ends."""


def completion(message):
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                "message": {"role": "assistant", **message},
            }
        ],
    }


def _chunk(delta, finish_reason=None):
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def chunks(message):
    """The streamed form of a completion's `message`: a list of chunk objects."""
    out = [_chunk({"role": "assistant", "content": ""})]
    for word in re.findall(r"\s*\S+\s*", message.get("content") or ""):
        out.append(_chunk({"content": word}))
    for index, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        name = call["function"]["name"]
        first = {"index": index, "id": call["id"], "type": "function"}
        first["function"] = {"name": name, "arguments": ""}
        out.append(_chunk({"tool_calls": [first]}))
        for piece in (arguments[:half], arguments[half:]):
            more = {"index": index, "function": {"arguments": piece}}
            out.append(_chunk({"tool_calls": [more]}))
    out.append(_chunk({}, "tool_calls" if message.get("tool_calls") else "stop"))
    return out


class FakeOpenAI:
    def __init__(self, token_delay=0.0, default=None):
        self.script = []
        self.requests = []
        self.token_delay = token_delay
        self.default = default or text_reply("Done.")
        self.disconnects = 0
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "authorization": self.headers["Authorization"], **body}
                )
                step = fake.script.pop(0) if fake.script else fake.default
                if isinstance(step, Silence):
                    fake.release.wait(30)
                    return
                if isinstance(step, tuple):
                    self.answer(*step)
                elif body.get("stream"):
                    self.stream(step)
                else:
                    self.answer(200, completion(step))

            def answer(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, message):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for chunk in chunks(message):
                        if fake.token_delay:
                            time.sleep(fake.token_delay)
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                except OSError:
                    fake.disconnects += 1

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # hundreds of streams may connect at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
