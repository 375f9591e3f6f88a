"""Embedding HeliosDB in an existing Twisted web application.

The application keeps its own pages and reactor; the database's REST API is
mounted under ``/db`` with ``putChild`` and shares the same reactor:

    python examples/embed_in_twisted_site.py --port 8081 --data ./data/embedded.db
    curl http://127.0.0.1:8081/              -> the application's own page
    curl http://127.0.0.1:8081/db/v1/branches -> the HeliosDB API
"""
from __future__ import annotations

import argparse

from twisted.internet import endpoints, reactor
from twisted.web import resource, server

from helios import EmbeddedDatabase
from helios.api import ApiServer


class HomePage(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Hello from an existing Twisted site\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--data", default="./data/embedded.db")
    args = parser.parse_args()

    db = EmbeddedDatabase(args.data)
    api = ApiServer(("127.0.0.1", args.port), db)          # no auth: this program decides (loopback only)

    root = resource.Resource()
    root.putChild(b"", HomePage())
    root.putChild(b"db", api.resource())                   # the API at /db/...

    site = server.Site(root)
    ep = endpoints.TCP4ServerEndpoint(reactor, args.port, interface="127.0.0.1")
    ep.listen(site).addCallback(lambda port: print(f"listening on {port.getHost().port}", flush=True))
    reactor.addSystemEventTrigger("before", "shutdown", db.close)   # checkpoint and close with the app
    reactor.run()


if __name__ == "__main__":
    main()
