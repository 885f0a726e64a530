"""Helpers the launch scripts call before any GPU work."""
