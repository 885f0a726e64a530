"""The whole Proxy-GRM pipeline at toy scale on one CPU box (README command 1)."""
