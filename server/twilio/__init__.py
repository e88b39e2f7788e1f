"""Twilio: the REST gateway, webhook signatures, and the built-in simulator."""
