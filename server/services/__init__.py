"""Domain services: inbound, sending, opt-out, read state, campaigns, notifications."""
