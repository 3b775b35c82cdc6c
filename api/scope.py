"""The keys this app adds to an ASGI request scope, shared by the middleware and what reads them."""

POSITION_KEY = "megilance.position"
RESPONDED_KEY = "megilance.responded"  # set once the response has started: an error can no longer replace it
REQUEST_ID_KEY = "megilance.request_id"  # the id the response carries in X-Request-ID (events record it too)
