"""Speed measurements, each a module run from the repository root: ``python -m benchmarks.NAME --help``.

Every benchmark prints ratios against a baseline measured in the same run, so they hold on a busy
machine where absolute times do not.
"""
