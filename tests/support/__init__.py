"""Test helpers: databases, live servers on loopback, a Twilio stand-in."""
