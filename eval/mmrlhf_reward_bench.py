"""Generate GRM verdicts on MM-RLHF-RewardBench.

`python mmrlhf_reward_bench.py --model-path MODEL --question_file PAIRS.jsonl --answers_file ANSWERS.jsonl`
(resumable: rerun the same command after an interruption).
"""

from proxy_grm.evaluation.cli import generate_main

if __name__ == "__main__":
    generate_main("mm_rlhf_rewardbench")
