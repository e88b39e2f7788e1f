"""The Starlette application: routes, auth, domain services, the Twilio gateway, settings, CLI."""
