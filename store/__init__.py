"""Persistence: models, queries and migrations. Imports nothing else of Switchboard."""
