"""Toy-scale stand-ins that the demo, the tests and the benchmarks run on: the toy colour task, the tiny model,
the stub teacher, fixture files in the four sources' and the three benchmarks' formats, and the local server
processes they start. Production code never imports this package (``tests/test_layout.py`` checks it); only
``proxy_grm.demo``, the tests, ``benchmarks/`` and the thin wrappers in ``data_prep/`` and ``scripts/`` do.
"""
