"""Record the chat requests a client sends to a local server, one JSON line each (lesson 5).

Usage: python capture_proxy.py http://127.0.0.1:8080 captured.jsonl  (listens on 127.0.0.1:8089)
"""

import json
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"  # your local server
LOG_PATH = sys.argv[2] if len(sys.argv) > 2 else "captured.jsonl"
HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "accept-encoding"}


class CaptureProxy(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.split("?")[0].endswith(("/messages", "/chat/completions")):
            with open(LOG_PATH, "a", encoding="utf-8") as log:  # the body only: no API keys
                log.write(json.dumps({"t_s": time.time(), "body": json.loads(body)}) + "\n")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        request = urllib.request.Request(UPSTREAM + self.path, body, headers, method="POST")
        try:
            reply = urllib.request.urlopen(request, timeout=900)
        except urllib.error.HTTPError as err:
            reply = err
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        while chunk := reply.read1(65536):  # pass streamed (SSE) replies on as they come
            self.wfile.write(chunk)
            self.wfile.flush()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", 8089), CaptureProxy).serve_forever()
