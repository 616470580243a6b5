#!/usr/bin/python3
# FAKE kube-apiserver (bundle-testbed test double, part of the fake kubeadm): the fake
# `kubeadm init`/`join --control-plane` starts it on :6443 in place of the static pod, so
# that haproxy's health check (TLS, GET /readyz) and `curl -k https://VIP:8443/readyz`
# meet something that answers like the API server. Not for real machines.
# Usage: fake-apiserver.py PORT CERT KEY VERSION
import json, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, cert, key, version = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class Handler(BaseHTTPRequestHandler):
    def setup(self):
        # TLS handshake here, in the connection's thread: a silent client (a bare TCP
        # check) cannot block the accept loop.
        self.request.settimeout(10)
        self.request.do_handshake()
        super().setup()

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/readyz", "/livez", "/healthz"):
            self.reply(200, "text/plain", b"ok")
        elif path == "/version":
            body = {"major": version.split(".")[0], "minor": version.split(".")[1], "gitVersion": "v" + version}
            self.reply(200, "application/json", json.dumps(body).encode())
        else:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                    "message": 'forbidden: User "system:anonymous" cannot get path "%s"' % path}
            self.reply(403, "application/json", json.dumps(body).encode())

    def reply(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("0.0.0.0", port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
server.serve_forever()
