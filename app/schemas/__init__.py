"""Request and response bodies, one module per part of the API."""
