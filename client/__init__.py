"""A client of the HTTP API for the command line: `rnnlab train | generate | experiment | jobs | cancel`.

It speaks only HTTP (httpx), so it drives any rnnlab server, local or remote, exactly as curl would.
It imports nothing of the server (`app`) and nothing of torch: the training config's fields, which
become its flags, come from the torch-free `models.config` (tests/test_layering.py checks both).
"""
