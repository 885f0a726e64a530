"""Score a MM-RLHF-RewardBench answers file.

`python get_acc_mmrlhf_reward_bench.py --file_path ANSWERS.jsonl [--protocol release] [--unparsed wrong|exclude|guess]`
"""

from proxy_grm.evaluation.cli import score_main

if __name__ == "__main__":
    score_main("mm_rlhf_rewardbench")
