"""Service functions: all logic and SQL of the API and the worker; routes and tasks stay thin."""
