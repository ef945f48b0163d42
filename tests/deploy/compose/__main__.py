"""python -m tests.deploy.compose: what `./run compose-test` runs (see checks.main)."""

from tests.deploy.compose.checks import main

raise SystemExit(main())
