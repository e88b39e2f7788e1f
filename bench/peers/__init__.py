"""Peers: the same scenarios built on the tools people would otherwise use."""
