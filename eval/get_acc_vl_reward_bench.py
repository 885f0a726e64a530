"""Score a VL-RewardBench answers file.

`python get_acc_vl_reward_bench.py --file_path ANSWERS.jsonl [--protocol release] [--unparsed wrong|exclude|guess]`
"""

from proxy_grm.evaluation.cli import score_main

if __name__ == "__main__":
    score_main("vl_rewardbench")
