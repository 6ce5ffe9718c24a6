"""The node's read-only web explorer, its JSON API (`/api/`) and its Prometheus metrics (`/metrics`).

`server` runs hypercorn (trio worker) inside the node's nursery with limits for hostile clients; `views`
builds each page's JSON document from read-only control requests; `pages` renders those documents as
plain HTML. Nothing here can act: the control socket stays the only way to act.
"""
