"""Stage 2: teacher critiques from an OpenAI-compatible endpoint into an append-only cache.

See `python data_prep/distill.py --help`; the logic lives in `proxy_grm.data.distill`.
"""

from proxy_grm.data.distill import main

if __name__ == "__main__":
    main()
