"""Do the GRM's rubrics help another evaluator? Accuracy with and without them.

`python rubric_transfer.py --answers-file ANSWERS.jsonl --evaluator proxy --url http://127.0.0.1:8000`
`python rubric_transfer.py --answers-file ANSWERS.jsonl --evaluator openai --url http://HOST:PORT/v1 --model NAME`
"""

from proxy_grm.evaluation.cli import transfer_main

if __name__ == "__main__":
    transfer_main()
