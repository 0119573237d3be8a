"""Payment-terminal linkage: pairing, signed sale events, provider adapters, ledger, conversion.

Importing this package never imports flask; the blueprint lives in :mod:`admin_web.terminals.views`.

Modules:
    signing     HMAC-SHA256 request signatures (``X-Signature: t=<unix>,v1=<hex>``)
    events      the generic sale/refund event format and its validation
    keys        at-rest protection of terminal secrets (a key file in the data dir, mode 0600)
    adapters    the TerminalAdapter protocol, the generic adapter and Stripe
    apply       the pure rules that apply a batch of events to store.json's tables
    ledger      the terminals/sales repository over store.json with group commit
    archive     write-once chunks of older ledger entries (keeps store.json small)
    conversion  sale -> recommendation attribution, conversion rates, trainer CSV export
    simulator   a threaded terminal simulator for demos and load tests
    views       the Flask blueprint (API, admin page, dashboard panel); cli: ``smartshelf terminal``
"""
