"""Evaluation on VL-RewardBench, Multimodal RewardBench and MM-RLHF-RewardBench.

A benchmark is a small spec (``benchmarks``: how to categorise a row, which
metrics, the official unparsed-verdict rule); one runner (``runner``) generates
verdicts for any of them and one scorer (``scoring``) turns an answers file into
metrics, either as the benchmark authors define them (default) or exactly as the
Proxy-GRM release's scripts printed them (``release``).
"""
