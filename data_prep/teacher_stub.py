"""A deterministic OpenAI-compatible stand-in teacher for CPU runs and tests.

See `python data_prep/teacher_stub.py --help`; the logic lives in `proxy_grm.toy.teacher_stub`.
"""

from proxy_grm.toy.teacher_stub import main

if __name__ == "__main__":
    main()
