"""A client of the HTTP API for the command line: `rnnlab train | generate | experiment | jobs | cancel`.

It speaks only HTTP (httpx), so it drives any rnnlab server, local or remote, exactly as curl would.
"""
