"""The dashboard at `/`: server-rendered pages whose scripts read and write through the public HTTP API."""
