"""The shared kernel: settings, database, tables, job statuses, the queue client, domain errors, bounds."""
