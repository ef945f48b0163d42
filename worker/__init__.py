"""What a worker does: it takes training jobs off the queue one at a time and runs them to their end.

- `celery_app.py`: the Celery application a worker process runs (`rnnlab worker`), and its signals.
- `tasks.py`: the task, a thin adapter from a delivered job id to `run_job`.
- `lifecycle.py`: `run_job`, a job's life on a worker (claim, load, train, settle), and `JobOutcome`.
- `run_loading.py`: `load_run`, the config, data and checkpoint a job starts from.
- `recorder.py`: `JobRecorder`, the training loop's callbacks: what the loop reports goes to the
  database, a heartbeat keeps the lease, a cancel or a shutdown stops the loop.
- `sweeper.py`: the thread every worker runs beside its jobs: its liveness row, dead workers' jobs
  back to the queue, jobs the broker never received sent again.

The database side of all this lives in app/services/ (`lease.py`, `supervision.py`, `workers.py`);
the loop itself in models/train.py. Imports run `models <- app <- worker`.
"""
