"""PostgreSQL for the services that own tables (see README.md here): models, the batch state machine, sessions
with retry, row claiming, shared row operations and migrations from Python."""
