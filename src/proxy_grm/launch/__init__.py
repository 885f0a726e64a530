"""The launch scripts' Python side: preflight checks before any GPU work, and verl's entry point with our trainer."""
