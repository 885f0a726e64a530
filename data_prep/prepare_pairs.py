"""Stage 1: read the four sources, convert, filter, write pairs.jsonl and images/.

See `python data_prep/prepare_pairs.py --help`; the logic lives in `proxy_grm.data.prepare_pairs`.
"""

from proxy_grm.data.prepare_pairs import main

if __name__ == "__main__":
    main()
