"""Stage 3: teacher-correct vs hard, then the GRM-SFT/Proxy-SFT (ms-swift) and GRM-RL/Proxy-RL (verl) sets.

See `python data_prep/split.py --help`; the logic lives in `proxy_grm.data.split`.
"""

from proxy_grm.data.split import main

if __name__ == "__main__":
    main()
