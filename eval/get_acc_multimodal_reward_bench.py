"""Score a Multimodal RewardBench answers file.

`python get_acc_multimodal_reward_bench.py --file_path ANSWERS.jsonl [--protocol release]
[--unparsed wrong|exclude|guess]`
"""

from proxy_grm.evaluation.cli import score_main

if __name__ == "__main__":
    score_main("multimodal_rewardbench")
