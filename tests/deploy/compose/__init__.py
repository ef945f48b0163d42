"""`./run compose-test`: build the images and run docker-compose.yml end to end, as a user would.

engine.py   a Docker daemon (the machine's, or a private one this run starts and stops), the Debian base
            image from debootstrap and the torch wheel, both cached between runs
override.py the override file derived from docker-compose.yml: images, build arguments, host networking
            and the ports and addresses that follow, nothing else
stack.py    one compose project: its commands, its containers, bounded waits, teardown
checks.py   the user's checks, step by step, each printed with its time
"""
