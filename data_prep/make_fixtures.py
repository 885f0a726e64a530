"""Write small datasets in each source's released shape (tests, demo).

See `python data_prep/make_fixtures.py --help`; the logic lives in `proxy_grm.toy.source_fixtures`.
"""

from proxy_grm.toy.source_fixtures import main

if __name__ == "__main__":
    main()
